"""The audience filter language: what it accepts, what it selects (run on DuckDB), and how
it reports what it cannot accept (with the position and a caret)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pytest
from threadline.contracts import ConfigError
from threadline_profiles.audiences import expr
from threadline_profiles.config import ProfilesConfig
from threadline_profiles.engines.base import quote
from threadline_profiles.traits.compute import catalog

CONFIG = ProfilesConfig.model_validate({"mappings": {
    "crm.customers": {"identifiers": {"email": "email"}, "traits": {"country": "country"}},
    "shop.orders": {"identifiers": {"email": "email"},
                    "orders": {"order_id": "id", "timestamp": "ts", "amount": "amount", "category": "category"}},
}})
CATALOG = catalog(CONFIG)
AS_OF = datetime(2024, 7, 1)

# name, orders_count, lifetime_value, country, repeat_buyer, top_categories, last_order_at
PEOPLE = [
    ("ana", 4, 100.0, "US", True, ["shoes", "hats"], datetime(2024, 6, 16)),
    ("bob", 3, 15.0, "CA", True, ["socks"], datetime(2024, 1, 31)),
    ("cy", 1, 50.0, "DE", False, ["hats"], datetime(2024, 5, 1)),
    ("dee", 0, 0.0, None, False, [], None),
]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (name VARCHAR, orders_count BIGINT, lifetime_value DOUBLE, country VARCHAR, "
                "repeat_buyer BOOLEAN, top_categories VARCHAR[], last_order_at TIMESTAMP)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", PEOPLE)
    return con


def select(con: duckdb.DuckDBPyConnection, text: str) -> list[str]:
    node = expr.parse(text, CATALOG)
    sql = expr.to_sql(node, {name: f"t.{quote(name)}" for name in CATALOG}, AS_OF)
    return [r[0] for r in con.execute(f"SELECT name FROM t WHERE {sql} ORDER BY name").fetchall()]


def error(text: str) -> expr.ExpressionError:
    with pytest.raises(expr.ExpressionError) as exc:
        expr.parse(text, CATALOG)
    return exc.value


# --------------------------------------------------------------------------- what it selects


@pytest.mark.parametrize("text, names", [
    ("orders_count >= 3", ["ana", "bob"]),
    ("orders_count == 1", ["cy"]),
    ("lifetime_value > 15.5", ["ana", "cy"]),
    ("country = 'US' or country = \"CA\"", ["ana", "bob"]),
    ("country != 'US'", ["bob", "cy"]),
    ("country <> 'US'", ["bob", "cy"]),
    ("repeat_buyer", ["ana", "bob"]),
    ("repeat_buyer = false", ["cy", "dee"]),
    ("not repeat_buyer", ["cy", "dee"]),
    ("country in ['US', 'DE']", ["ana", "cy"]),
    ("country not in ['US', 'DE']", ["bob"]),
    ("top_categories contains 'hats'", ["ana", "cy"]),
    ("not (top_categories contains 'hats')", ["bob", "dee"]),
    ("country is null", ["dee"]),
    ("country IS NOT NULL AND orders_count < 2", ["cy"]),
    ("last_order_at within 90d", ["ana", "cy"]),
    ("last_order_at within 3w", ["ana"]),
    ("last_order_at > '2024-05-01'", ["ana"]),
    ("last_order_at >= '2024-05-01T00:00:00'", ["ana", "cy"]),
    ("(orders_count > 3 or country = 'DE') and lifetime_value >= 50", ["ana", "cy"]),
    ("orders_count > 3 or country = 'DE' and lifetime_value > 60", ["ana"]),  # and binds tighter than or
    ("lifetime_value > orders_count", ["ana", "bob", "cy"]),
    ("orders_count >= -1", ["ana", "bob", "cy", "dee"]),
])
def test_each_construct_selects_what_it_says(con, text, names):
    assert select(con, text) == names


def test_a_comparison_with_a_missing_value_is_false_so_not_includes_it(con):
    assert select(con, "country = 'US'") == ["ana"]
    assert select(con, "not (country = 'US')") == ["bob", "cy", "dee"]


def test_keywords_are_case_insensitive_and_filters_may_span_lines(con):
    assert select(con, "orders_count > 0\n  AND Country = 'US'".replace("Country", "country")) == ["ana"]


def test_profile_fields_are_text_and_computed_names_hide_none_of_them():
    assert CATALOG["country"].type == "text" and CATALOG["country"].origin == "profile"
    assert CATALOG["orders_count"].origin == "built-in"


def test_traits_used_names_every_reference():
    node = expr.parse("orders_count > 1 and (country = 'US' or not repeat_buyer) and lifetime_value > orders_count", CATALOG)
    assert expr.traits_used(node) == {"orders_count", "country", "repeat_buyer", "lifetime_value"}


# --------------------------------------------------------------------------- safety


def test_a_quote_inside_a_string_stays_inside_the_literal(con):
    node = expr.parse("country = 'x\\' OR 1=1 --'", CATALOG)
    sql = expr.to_sql(node, {"country": 't."country"'}, AS_OF)
    assert sql == "COALESCE(t.\"country\" = 'x'' OR 1=1 --', FALSE)"
    assert select(con, "country = 'x\\' OR 1=1 --'") == []


def test_sql_after_a_filter_is_rejected_before_any_sql_is_built(con):
    exc = error("orders_count > 1; DROP TABLE t")
    assert exc.message.startswith("unexpected character ';' at 1:17")
    assert con.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 4


def test_a_doubled_quote_does_not_close_a_string_and_reopen_sql():
    exc = error("country = 'x'' OR 1=1 --'")
    assert "unexpected" in exc.message and "at 1:14" in exc.message


def test_a_quoted_identifier_is_a_string_not_a_column():
    exc = error('"orders_count" > 1')
    assert exc.message.startswith("expected a trait name, found '\"orders_count\"' at 1:1")


def test_names_are_only_ever_known_traits():
    assert error("orders_count > 1 or pg_sleep > 1").message.startswith("unknown trait 'pg_sleep' at 1:21")


# --------------------------------------------------------------------------- errors point at the spot


def test_a_typo_in_a_trait_name_suggests_the_trait():
    exc = error("ordrs_count > 3")
    assert exc.message == "unknown trait 'ordrs_count' at 1:1 — did you mean 'orders_count'?"
    assert exc.display() == "    ordrs_count > 3\n    ^^^^^^^^^^^"
    assert isinstance(exc, ConfigError)


def test_an_unknown_trait_without_a_near_name_lists_known_ones():
    exc = error("orders_count > 1 and zzz = 'a'")
    assert exc.message.startswith("unknown trait 'zzz' at 1:22 — known traits: ")
    assert "average_order_value" in exc.message


def test_positions_count_lines_and_columns():
    exc = error("orders_count > 1\n  and countyr = 'US'")
    assert exc.message == "unknown trait 'countyr' at 2:7 — did you mean 'country'?"
    assert exc.display() == "      and countyr = 'US'\n          ^^^^^^^"


@pytest.mark.parametrize("text, message", [
    ("orders_count => 3", "unknown operator '=>' at 1:14 — use '>='"),
    ("orders_count =< 3", "unknown operator '=<' at 1:14 — use '<='"),
    ("orders_count > 1 && repeat_buyer", "unknown operator '&&' at 1:18 — use 'and'"),
    ("orders_count > 1 || repeat_buyer", "unknown operator '||' at 1:18 — use 'or'"),
    ("!repeat_buyer", "unknown operator '!' at 1:1 — use 'not'"),
    ("top_categories contain 'x'", "expected an operator after 'top_categories', found 'contain' at 1:16 — did you mean 'contains'?"),
    ("country not null", "expected 'in' after 'not', found 'null' at 1:13"),
    ("country is 'US'", "expected 'null' after 'is', found \"'US'\" at 1:12"),
])
def test_a_bad_operator_says_what_to_write(text, message):
    assert error(text).message.startswith(message)


def test_an_unclosed_parenthesis_points_at_the_one_left_open():
    exc = error("repeat_buyer and (orders_count > 1 or (country = 'US')")
    assert exc.message == "unclosed '(' at 1:18 — add the ')' that ends it"
    assert exc.display().splitlines()[1] == " " * 4 + " " * 17 + "^"


def test_an_unmatched_closing_parenthesis():
    assert error("orders_count > 1)").message.startswith("unmatched ')' at 1:17")


def test_an_unclosed_string_points_at_its_opening_quote():
    assert error("country = 'US").message == "unclosed string at 1:11 — end it with '"


def test_an_unclosed_list():
    assert error("country in ['US', 'CA'").message.startswith("unclosed '[' at 1:12")


@pytest.mark.parametrize("text, message", [
    ("country > 3", "'>' orders numbers and times; 'country' is text at 1:9"),
    ("orders_count > 'three'", "'orders_count' is a number; 'three' is text at 1:16"),
    ("repeat_buyer = 'yes'", "'repeat_buyer' is true/false; 'yes' is text at 1:16"),
    ("top_categories = 'hats'", "'top_categories' is a list; '=' does not compare lists at 1:16"),
    ("orders_count contains 'x'", "'contains' needs a list trait; 'orders_count' is a number at 1:14"),
    ("top_categories contains 3", "'top_categories' holds text; 3 is a number at 1:25"),
    ("orders_count within 90d", "'within' needs a time trait; 'orders_count' is a number at 1:14"),
    ("last_order_at > 90d", "a duration (90d) only goes after 'within' at 1:17"),
    ("last_order_at within 90", "expected a duration after 'within', found '90' at 1:22"),
    ("last_order_at > '2024-13-01'", "'2024-13-01' is not a date or time at 1:17"),
    ("orders_count", "'orders_count' is a number, not a condition at 1:1 — e.g. orders_count > 0"),
    ("country = null", "null is not a value to compare with at 1:11"),
    ("country = US", "expected a value, found 'US' at 1:11 — quote text: 'US'"),
    ("3 < orders_count", "expected a trait name, found '3' at 1:1"),
    ("orders_count > 90days", "'90days' is neither a number nor a duration at 1:16"),
    ("orders_count in []", "expected a value, found ']' at 1:18"),
    ("", "empty filter at 1:1"),
    ("orders_count > 1 and", "expected a trait name, '(' or 'not', found the end of the filter at 1:21"),
    ("country = 'US' country = 'CA'", "unexpected 'country' at 1:16 — expected 'and', 'or' or the end"),
])
def test_a_filter_that_cannot_mean_anything_is_refused_with_its_position(text, message):
    assert error(text).message.startswith(message)


def test_a_trait_that_the_mappings_cannot_provide_says_what_to_map():
    exc = error("open_tickets > 0")
    assert exc.message.startswith("trait 'open_tickets' needs a stream mapped with `tickets: {ticket_id, status}` at 1:1")


@pytest.mark.parametrize("window", ["99999999999999999999y", "73001d", "201y"])
def test_a_window_longer_than_any_record_is_an_error_not_an_overflow(window):
    with pytest.raises(expr.ExpressionError) as caught:
        expr.parse(f"last_order_at within {window}", CATALOG)
    assert "longer than 200 years" in str(caught.value) and window in str(caught.value)


def test_a_window_of_two_hundred_years_still_selects(con):
    assert select(con, "last_order_at within 200y") == ["ana", "bob", "cy"]


@pytest.mark.parametrize("opening", ["(", "not "])
def test_a_filter_nested_too_deep_is_an_error_not_a_recursion_crash(opening):
    text = opening * 5000 + "orders_count > 1" + (")" * 5000 if opening == "(" else "")
    with pytest.raises(expr.ExpressionError) as caught:
        expr.parse(text, CATALOG)
    assert "nested more than 100 deep" in str(caught.value)


def test_a_filter_nested_within_the_limit_parses(con):
    assert select(con, "(" * 100 + "orders_count > 3" + ")" * 100) == ["ana"]
