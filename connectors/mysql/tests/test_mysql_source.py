"""Types map to Arrow exactly; missing databases, tables and privileges are errors that say
what to run."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pytest

from threadline.contracts import Batch, ConfigError, ReadRequest, SyncMode
from threadline.engine.coerce import coerce
from threadline_mysql import MySQLSource

import mariadb_server as mariadb


def _source(config: dict):
    source = MySQLSource()
    return source, source.spec.model_validate(config)


def test_each_column_type_becomes_its_exact_arrow_type_and_value(database):
    mariadb.execute(f"""create table `{database}`.t (id int primary key, amount decimal(12,3), big bigint unsigned,
        flag tinyint(1), ratio float, score double, day date, at datetime(6), stamp timestamp(6) null, clock time(6),
        yr year, name varchar(20), doc json, raw blob, mood enum('happy','sad'))""")
    mariadb.execute(f"""insert into `{database}`.t values (1, 123.456, 18446744073709551615, 1, 1.5, 2.25, '2024-01-02',
        '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.5', '12:34:56.5', 2024, 'hé', '{{"a": 1}}', 'xy', 'sad'),
        (2, null, null, null, null, null, null, null, null, null, null, null, null, null, null)""")
    source, config = _source({"dsn": mariadb.dsn(database)})
    stream = source.discover(config).get("t")
    types = {f.name: f.type for f in stream.schema}
    assert types["amount"] == pa.decimal128(12, 3) and types["big"] == pa.uint64() and types["flag"] == pa.int8()
    assert types["at"] == pa.timestamp("us") and types["stamp"] == pa.timestamp("us", tz="UTC")
    assert types["clock"] == pa.time64("us") and types["yr"] == pa.int16() and types["raw"] == pa.binary()
    batches = [m.records for m in source.read(config, ReadRequest(stream, SyncMode.FULL_REFRESH)) if isinstance(m, Batch)]
    rows = [r for b in batches for r in coerce(b, stream.schema, stream.primary_key).good.to_pylist()]
    first = min(rows, key=lambda r: r["id"])
    assert first["amount"] == decimal.Decimal("123.456") and first["big"] == 18446744073709551615
    assert first["at"] == dt.datetime(2024, 1, 2, 3, 4, 5, 123456)
    assert first["stamp"] == dt.datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=dt.timezone.utc)
    assert first["clock"] == dt.time(12, 34, 56, 500000) and first["name"] == "hé" and first["raw"] == b"xy"
    assert len(rows) == 2


def test_a_database_that_does_not_exist_says_how_to_create_it(database):
    source, config = _source({"dsn": mariadb.dsn("no_such_db_tl")})
    with pytest.raises(ConfigError) as caught:
        source.check(config)
    assert caught.value.field == "dsn" and "CREATE DATABASE `no_such_db_tl`" in caught.value.render()


def test_a_table_that_does_not_exist_is_named(database):
    source, config = _source({"dsn": mariadb.dsn(database), "tables": ["customers"]})
    with pytest.raises(ConfigError) as caught:
        source.check(config)
    assert f"table {database}.customers does not exist" in caught.value.render()


def test_a_table_the_user_may_not_read_says_which_grant(database):
    mariadb.execute(f"create table `{database}`.customers (id int primary key)")
    mariadb.execute(f"create table `{database}`.secrets (id int primary key)")
    user = database + "_u"
    mariadb.execute(f"create user '{user}'@'%'")
    try:
        mariadb.execute(f"grant select on `{database}`.customers to '{user}'@'%'")
        source, config = _source({"dsn": mariadb.dsn(database, user), "tables": ["customers", "secrets"]})
        with pytest.raises(ConfigError) as caught:
            source.check(config)
        assert f"GRANT SELECT ON `{database}`.`secrets` TO '{user}'@'%';" in caught.value.render()
    finally:
        mariadb.execute(f"drop user '{user}'@'%'")
