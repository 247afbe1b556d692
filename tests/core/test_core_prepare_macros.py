"""The normalization macros audience destinations write their `prepare` with
(threadline.activation.prepare): every script, and countries through pycountry."""

from __future__ import annotations

import pyarrow as pa
import pytest

from threadline.activation import prepare_members


def run(expression: str, values: list[str | None]) -> list[str | None]:
    members = pa.table({"member_id": [str(i) for i in range(len(values))], "x": pa.array(values, pa.string())})
    return prepare_members(members, f"SELECT {expression} AS y FROM members").column("y").to_pylist()


def test_letters_keeps_every_scripts_letters_and_combining_marks_and_drops_the_rest():
    given = ["김 민준", "Пётр-Ильич", "王 小明", "مُحَمَّد", "प्रिया", "O'Neil 3rd", "--", None]
    assert run("letters(x)", given) == ["김민준", "пётрильич", "王小明", "مُحَمَّد", "प्रिया", "oneilrd", None, None]


def test_letters_lower_cases_a_greek_words_last_sigma_as_final():
    assert run("letters(x)", ["ΟΔΥΣΣΕΑΣ ΝΙΚΟΣ", "ΣΑΣ", "Σ"]) == ["οδυσσεαςνικος", "σας", "σ"]


@pytest.mark.parametrize(("given", "code"), [
    ("UK", "GB"), ("gb", "GB"), ("GBR", "GB"), ("United Kingdom", "GB"),
    ("South Korea", "KR"), ("Korea, Republic of", "KR"), ("대한민국", "KR"),
    ("Deutschland", "DE"), ("Ελλάδα", "GR"), ("中国", "CN"), (" U.S.A. ", "US"), ("Côte d’Ivoire", "CI"),
])
def test_country_code_reads_codes_and_names_in_many_languages(given, code):
    assert run("country_code(x)", [given]) == [code]


def test_country_code_is_null_for_what_names_no_country_or_more_than_one():
    assert run("country_code(x)", ["Atlantis", "XX", "Korea", "", None]) == [None] * 5
