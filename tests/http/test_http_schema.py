"""Stream schemas declared as text: nested types parse whole."""

import pyarrow as pa

from threadline.http.schema import parse_type


def test_a_decimal_inside_a_struct_is_not_split_at_its_comma():
    assert parse_type("struct<amount: decimal(18,2), currency: string>") == pa.struct(
        [("amount", pa.decimal128(18, 2)), ("currency", pa.string())])
    assert parse_type("list<struct<price: decimal(12,2), qty: int64>>") == pa.list_(
        pa.struct([("price", pa.decimal128(12, 2)), ("qty", pa.int64())]))
