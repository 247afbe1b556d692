"""The postgres source against threadline's source contract suite, reading a shop schema on the
machine's Postgres: once with cursors (customers by `updated_at`), once by change data capture."""

from __future__ import annotations

from typing import Any

from threadline.testing import SourceContract
from threadline_postgres import PostgresSource

from shop_sandbox import ShopSandbox


class TestPostgresByCursorContract(SourceContract):
    source = PostgresSource
    sandbox = ShopSandbox
    bad_config = {"dsn": "postgresql://postgres@127.0.0.1:9/test"}
    credential_field = "dsn"

    def config(self, sandbox: ShopSandbox) -> dict[str, Any]:
        return {"dsn": sandbox.dsn, "schemas": [sandbox.schema], "checkpoint_rows": 1000, "connect_timeout": 3,
                "tables": [{"table": "customers", "cursor": "updated_at"}, "orders"]}

    def expected_records(self, sandbox: ShopSandbox) -> dict[str, list[dict[str, Any]]]:
        return {"customers": sandbox.rows("customers"), "orders": sandbox.rows("orders")}

    def change(self, sandbox: ShopSandbox) -> dict[str, list[dict[str, Any]]]:
        return {"customers": sandbox.add_and_update_customers(3, [1, 2])}


class TestPostgresByChangeDataCaptureContract(TestPostgresByCursorContract):
    sandbox_options = {"cdc": True}

    def config(self, sandbox: ShopSandbox) -> dict[str, Any]:
        return {"dsn": sandbox.dsn, "schemas": [sandbox.schema], "checkpoint_rows": 1000, "connect_timeout": 3,
                "replication": {"slot": sandbox.schema, "publication": sandbox.schema, "create_publication": False,
                                "reuse_slot": True}}  # the suite reads without the engine too, creating the slots
