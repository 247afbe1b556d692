"""A small shop in a scratch Postgres schema, as the contract suite's "sandbox": customers
(incremental by `updated_at`, several sharing a value) and orders, read by a role of its own
that the suite can stop from logging in."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row

from threadline_postgres import testing


class ShopSandbox:
    """`start()` creates the schema, the role and the rows; `stop()` drops them."""

    def __init__(self, cdc: bool = False) -> None:
        self.cdc = cdc
        self.schema = testing.unique_name("tl_shop")
        self.role = f"{self.schema}_reader"
        self.next_id = 1

    @property
    def dsn(self) -> str:
        return testing.TEST_DSN.replace("postgres@", f"{self.role}@", 1)

    def start(self) -> None:
        reason = testing.logical_unavailable() if self.cdc else testing.unreachable()
        if reason:
            import pytest

            pytest.skip(reason)
        s, role = self.schema, self.role
        testing.execute(f'create schema "{s}"')
        testing.execute(f'create role "{role}" login' + (" replication" if self.cdc else ""))
        testing.execute(f'''create table "{s}".customers (id int primary key, email text, name text,
            lifetime_value numeric(12,2), tags text[], updated_at timestamptz not null)''')
        testing.execute(f'''create table "{s}".orders (order_id bigint primary key, customer_id int,
            total numeric(10,2), placed_at timestamptz)''')
        testing.execute(f'''insert into "{s}".customers select g, 'c' || g || '@example.com', 'Name ' || g,
            g * 1.25, array['t' || (g % 3)], timestamptz '2024-01-01' + (g / 10) * interval '1 hour'
            from generate_series(1, 2500) g''')
        testing.execute(f'''insert into "{s}".orders select g, 1 + g % 2500, g * 0.5,
            timestamptz '2024-02-01' + g * interval '1 minute' from generate_series(1, 1200) g''')
        self.next_id = 2501
        testing.execute(f'grant usage on schema "{s}" to "{role}"')
        testing.execute(f'grant select on all tables in schema "{s}" to "{role}"')
        if self.cdc:  # as a DBA would: the tables' owner publishes them
            testing.execute(f'create publication "{s}" for table "{s}".customers, "{s}".orders')

    def stop(self) -> None:
        testing.drop_everything(self.schema, slot_prefix=self.schema, publication=self.schema)
        testing.execute(f'drop owned by "{self.role}"')
        testing.execute(f'drop role if exists "{self.role}"')

    def revoke_credentials(self) -> None:
        testing.execute(f'alter role "{self.role}" nologin')

    def rows(self, table: str) -> list[dict[str, Any]]:
        import psycopg

        with psycopg.connect(testing.TEST_DSN, row_factory=dict_row) as con:
            return con.execute(f'select * from "{self.schema}"."{table}"').fetchall()

    def add_and_update_customers(self, added: int, updated: list[int]) -> list[dict[str, Any]]:
        ids = list(range(self.next_id, self.next_id + added))
        self.next_id += added
        testing.execute(f'''insert into "{self.schema}".customers select g, 'new' || g || '@example.com', 'New',
            1, '{{}}', now() from unnest(%s::int[]) g''', (ids,))
        testing.execute(f'update "{self.schema}".customers set name = name || \' (changed)\', updated_at = now() '
                        'where id = any(%s)', (updated,))
        return [r for r in self.rows("customers") if r["id"] in set(ids) | set(updated)]
