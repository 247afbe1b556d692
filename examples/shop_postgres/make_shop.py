"""Create the example web shop's database: customers and orders in a Postgres schema.

    python make_shop.py                 # schema `shop` (or $SHOP_SCHEMA) in $SHOP_PG_DSN
    python make_shop.py --changes       # what a day of shopping does: new customers, new orders,
                                        # an email changed, a customer who left (deleted with orders)

$SHOP_PG_DSN defaults to the machine's Postgres (postgresql://postgres@127.0.0.1:5432/test).
CDC needs wal_level = logical on that server (see connectors/postgres/README.md).
"""

from __future__ import annotations

import argparse
import os

import psycopg

DSN = os.environ.get("SHOP_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
FIRST = ["Ana", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas"]
LAST = ["Silva", "Meyer", "Martin", "Rossi", "Novak", "Haddad", "Kim", "Dubois", "Costa", "Berg"]


def create(con: psycopg.Connection, schema: str, customers: int = 200) -> None:
    con.execute(f'drop schema if exists "{schema}" cascade')
    con.execute(f'create schema "{schema}"')
    con.execute(f'''create table "{schema}".customers (
        customer_id int primary key, email text, phone text, first_name text, last_name text,
        created_at timestamptz not null default now(), updated_at timestamptz not null default now())''')
    con.execute(f'''create table "{schema}".orders (
        order_id bigint primary key, customer_id int not null references "{schema}".customers on delete cascade,
        total numeric(10,2) not null, currency char(3) not null default 'EUR', placed_at timestamptz not null)''')
    rows = [(i, f"{FIRST[i % 10].lower()}.{LAST[i // 10 % 10].lower()}{i}@example.com", f"+3519{i:08d}",
             FIRST[i % 10], LAST[i // 10 % 10]) for i in range(1, customers + 1)]
    with con.cursor().copy(f'copy "{schema}".customers (customer_id, email, phone, first_name, last_name) '
                           "from stdin") as copy:
        for row in rows:
            copy.write_row(row)
    con.execute(f'''insert into "{schema}".orders (order_id, customer_id, total, placed_at)
        select g, 1 + g % {customers}, round((10 + g % 90)::numeric * 1.15, 2), now() - g * interval '3 hours'
        from generate_series(1, {customers * 3}) g''')


def changes(con: psycopg.Connection, schema: str) -> None:
    """New customers and orders, one email changed, customer 2 deleted (their orders go too)."""
    top = con.execute(f'select max(customer_id) from "{schema}".customers').fetchone()[0]
    for i in range(top + 1, top + 6):
        con.execute(f'insert into "{schema}".customers (customer_id, email, first_name, last_name) values '
                    f"(%s, %s, 'New', 'Customer')", (i, f"new{i}@example.com"))
        con.execute(f'insert into "{schema}".orders (order_id, customer_id, total, placed_at) select '
                    f'coalesce(max(order_id), 0) + 1, %s, 49.90, now() from "{schema}".orders', (i,))
    con.execute(f'''update "{schema}".customers set email = 'david.changed@example.com', updated_at = now()
                    where customer_id = 3''')
    con.execute(f'delete from "{schema}".customers where customer_id = 2')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schema", default=os.environ.get("SHOP_SCHEMA", "shop"))
    parser.add_argument("--changes", action="store_true", help="apply a day of changes instead of creating the shop")
    args = parser.parse_args()
    with psycopg.connect(DSN, autocommit=True) as con:
        if args.changes:
            changes(con, args.schema)
            print(f"changed the shop in schema {args.schema}: 5 new customers with orders, 1 email, 1 deleted")
        else:
            create(con, args.schema)
            print(f"created the shop in schema {args.schema}: 200 customers, 600 orders")


if __name__ == "__main__":
    main()
