"""The mysql source against threadline's source contract suite, on a MariaDB the tests start:
customers incremental by `updated_at` (several rows share a value), orders by full refresh."""

from __future__ import annotations

from typing import Any

import pytest

from threadline.testing import SourceContract
from threadline_mysql import MySQLSource

import mariadb_server as mariadb


class ShopDatabase:
    """A database of its own with a user of its own, as the suite's sandbox."""

    def __init__(self) -> None:
        self.database = ""
        self.user = ""
        self.next_id = 2001

    def start(self) -> None:
        reason = mariadb.unavailable()
        if reason:
            pytest.skip(reason)
        self.database = mariadb.new_database()
        self.user = self.database + "_u"
        db = self.database
        mariadb.execute(f"""create table `{db}`.customers (id int primary key, email varchar(200), lifetime_value
            decimal(12,2), active tinyint(1), updated_at timestamp(6) not null)""")
        mariadb.execute(f"create table `{db}`.orders (order_id bigint primary key, customer_id int, total decimal(10,2), "
                        "placed_at datetime(6))")
        mariadb.execute(f"""insert into `{db}`.customers select seq, concat('c', seq, '@example.com'), seq * 1.25, seq % 2,
            timestamp('2024-01-01') + interval (seq div 10) hour from seq_1_to_2000""", database=db)
        mariadb.execute(f"""insert into `{db}`.orders select seq, 1 + seq % 2000, seq * 0.5,
            timestamp('2024-02-01') + interval seq minute from seq_1_to_1200""", database=db)
        mariadb.execute(f"create user '{self.user}'@'%'")
        mariadb.execute(f"grant select on `{db}`.* to '{self.user}'@'%'")

    def stop(self) -> None:
        mariadb.execute(f"drop database if exists `{self.database}`")
        mariadb.execute(f"drop user if exists '{self.user}'@'%'")

    def revoke_credentials(self) -> None:
        mariadb.execute(f"alter user '{self.user}'@'%' identified by 'changed-elsewhere'")

    def rows(self, table: str) -> list[dict[str, Any]]:
        import pymysql

        con = pymysql.connect(host=mariadb.HOST, port=mariadb.PORT, user="root", database=self.database,
                              cursorclass=pymysql.cursors.DictCursor, init_command="SET time_zone = '+00:00'")
        try:
            with con.cursor() as cur:
                cur.execute(f"select * from `{table}`")
                rows = list(cur.fetchall())
        finally:
            con.close()
        import datetime as dt

        for row in rows:  # TIMESTAMP values are UTC (the session's time zone)
            if isinstance(row.get("updated_at"), dt.datetime):
                row["updated_at"] = row["updated_at"].replace(tzinfo=dt.timezone.utc)
        return rows

    def add_and_update_customers(self, added: int, updated: list[int]) -> list[dict[str, Any]]:
        ids = list(range(self.next_id, self.next_id + added))
        self.next_id += added
        for i in ids:
            mariadb.execute(f"insert into `{self.database}`.customers values (%s, 'new', 1, 1, now(6))", (i,))
        mariadb.execute(f"update `{self.database}`.customers set email = concat(email, '!'), updated_at = now(6) "
                        f"where id in ({', '.join(str(i) for i in updated)})")
        return [r for r in self.rows("customers") if r["id"] in set(ids) | set(updated)]


class TestMySQLContract(SourceContract):
    source = MySQLSource
    sandbox = ShopDatabase
    bad_config = {"dsn": "mysql://root@127.0.0.1:9/test"}
    credential_field = "dsn"

    def config(self, sandbox: ShopDatabase) -> dict[str, Any]:
        return {"dsn": mariadb.dsn(sandbox.database, sandbox.user), "checkpoint_rows": 1000, "connect_timeout": 3,
                "tables": [{"table": "customers", "cursor": "updated_at"}, "orders"]}

    def expected_records(self, sandbox: ShopDatabase) -> dict[str, list[dict[str, Any]]]:
        return {"customers": sandbox.rows("customers"), "orders": sandbox.rows("orders")}

    def change(self, sandbox: ShopDatabase) -> dict[str, list[dict[str, Any]]]:
        return {"customers": sandbox.add_and_update_customers(3, [1, 2])}
