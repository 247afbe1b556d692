"""Enrichment on hashed keys: a partner's SHA-256 emails or phones join to profiles by our
normalized identifiers hashed the same way; the match rate is reported; attributes show in
the golden record with their source as lineage, only for profiles that consented to
`enrichment` (default deny); a file of plain or unnormalized identifiers is refused with the
reason and nothing is kept; forgetting a person drops their partner rows."""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from threadline_profiles import api
from threadline_profiles.testing import Lander
from threadline_profiles.traits import enrichment
from threadline_profiles.traits.enrichment import PartnerFileError

MAPPING = {"crm.contacts": {"identifiers": {"email": "email", "phone": "phone"},
                            "traits": {"first_name": "first_name", "last_name": "last_name"},
                            "cleaning": {"phone_region": "US"},
                            "consent": {"channel": "advertising", "purpose": "enrichment", "column": "share_ok"}}}

PEOPLE = [
    # id, email as the CRM has it, phone as written, consent to enrichment
    (1, "  Ana.Lopez@Example.com ", "(512) 353-6101", "yes"),
    (2, "bob.kim@example.com", "512-353-6102", "no"),
    (3, "cara.diaz@example.com", "+1 512 353 6103", None),  # no statement: denied by default
    (4, "dev.shah@example.com", "5123536104", "yes"),
]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def store_with_people(tmp_path):
    lander = Lander({"path": str(tmp_path / "profiles.duckdb"), "resolve_on_finish": False, "mappings": MAPPING})
    lander.land("crm", "contacts", [{"id": i, "email": e, "phone": p, "first_name": "X", "last_name": f"L{i}",
                                      "share_ok": c} for i, e, p, c in PEOPLE])
    lander.build()
    store = lander.store()
    yield store
    store.close()


def partner_file(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_hashed_emails_match_consenting_profiles_with_lineage_and_the_rate_is_reported(tmp_path, store_with_people):
    store = store_with_people
    file = partner_file(tmp_path / "acme.csv", [
        {"email_sha256": sha("ana.lopez@example.com"), "income_band": "C", "interests": "cycling"},
        {"email_sha256": sha("bob.kim@example.com").upper(), "income_band": "B", "interests": "golf"},  # hex case is fine
        {"email_sha256": sha("cara.diaz@example.com"), "income_band": "A", "interests": ""},
        {"email_sha256": sha("stranger@example.com"), "income_band": "D", "interests": "chess"},
    ])
    result = api.enrich(store, file, source="acme")
    assert (result.rows, result.matched, result.profiles_matched) == (4, 3, 3)
    assert result.match_rate == pytest.approx(0.75) and "75.0%" in result.describe()
    assert (result.profiles_enriched, result.withheld_no_consent) == (1, 2)

    (ana,) = api.find(store, email="ana.lopez@example.com")
    band = ana.golden["income_band"]
    assert (band.value, band.source, band.rule, band.stream) == ("C", "enrichment:acme", "enrichment", "acme.csv")
    assert ana.golden["interests"].value == "cycling"
    assert ana.golden["last_name"].source == "crm"  # our own data keeps its lineage
    for email in ("bob.kim@example.com", "cara.diaz@example.com"):  # denied, and no statement at all
        (other,) = api.find(store, email=email)
        assert "income_band" not in other.golden
    kept = store.engine.rows("SELECT * FROM tl_enrichment")
    assert {r["digest"] for r in kept} == {sha("ana.lopez@example.com")}, "rows of non-consenting people are not kept"


def test_hashed_phones_match_by_e164_digits(tmp_path, store_with_people):
    file = partner_file(tmp_path / "tel.csv", [{"phone_sha256": sha("15123536104"), "segment": "urban"},
                                               {"phone_sha256": sha("+15123536101"), "segment": "suburban"}])
    result = api.enrich(store_with_people, file, source="telco")
    assert (result.kind, result.matched, result.profiles_enriched) == ("phone", 2, 2)
    (dev,) = api.find(store_with_people, email="dev.shah@example.com")
    assert dev.golden["segment"].value == "urban" and dev.golden["segment"].source == "enrichment:telco"


def test_withdrawn_consent_hides_what_was_loaded(tmp_path, store_with_people):
    store = store_with_people
    api.enrich(store, partner_file(tmp_path / "a.csv", [{"email_sha256": sha("ana.lopez@example.com"), "tier": "gold"}]),
               source="acme")
    assert api.get(store, email="ana.lopez@example.com").golden["tier"].value == "gold"
    store.engine.run(["UPDATE tl_consent SET granted = FALSE WHERE purpose = 'enrichment'"])
    assert "tier" not in api.get(store, email="ana.lopez@example.com").golden


@pytest.mark.parametrize("values, reason", [
    (["ana.lopez@example.com", "bob.kim@example.com"], "plain emails"),
    ([hashlib.md5(b"ana.lopez@example.com").hexdigest()], "not SHA-256 hex digests"),
])
def test_a_file_of_plain_values_or_other_digests_is_refused(tmp_path, store_with_people, values, reason):
    file = partner_file(tmp_path / "bad.csv", [{"email_sha256": v, "tier": "gold"} for v in values])
    with pytest.raises(PartnerFileError, match=reason) as err:
        api.enrich(store_with_people, file, source="acme")
    assert "ana.lopez" not in str(err.value), "the refusal names rows, never the values"
    assert not store_with_people.engine.table_exists("tl_enrichment")


def test_plain_phones_are_refused(tmp_path, store_with_people):
    file = partner_file(tmp_path / "bad.csv", [{"phone_sha256": "+1 512 353 6101", "tier": "gold"}])
    with pytest.raises(PartnerFileError, match="plain phones"):
        api.enrich(store_with_people, file, source="acme")


def test_digests_of_unnormalized_identifiers_are_refused_with_the_reason(tmp_path, store_with_people):
    as_written = [sha("  Ana.Lopez@Example.com "), sha("Ana.Lopez@Example.com")]
    file = partner_file(tmp_path / "raw.csv", [{"email_sha256": d, "tier": "gold"} for d in as_written])
    with pytest.raises(PartnerFileError, match="not normalized") as err:
        api.enrich(store_with_people, file, source="acme")
    assert "trimmed and lower-cased" in err.value.hint
    phones = partner_file(tmp_path / "tel.csv", [{"phone_sha256": sha("5123536101"), "tier": "gold"},  # no country code
                                                 {"phone_sha256": sha("(512) 353-6101"), "tier": "gold"}])
    with pytest.raises(PartnerFileError, match="phones that were not normalized"):
        api.enrich(store_with_people, phones, source="telco")
    assert not store_with_people.engine.table_exists("tl_enrichment")


def test_forgetting_a_person_drops_their_partner_rows(tmp_path, store_with_people):
    store = store_with_people
    api.enrich(store, partner_file(tmp_path / "a.csv", [{"email_sha256": sha("ana.lopez@example.com"), "tier": "gold"},
                                                       {"email_sha256": sha("dev.shah@example.com"), "tier": "silver"}]),
               source="acme")
    assert store.engine.scalar("SELECT COUNT(*) FROM tl_enrichment") == 2
    api.forget(store, email="ana.lopez@example.com")
    assert {r["digest"] for r in store.engine.rows("SELECT digest FROM tl_enrichment")} == {sha("dev.shah@example.com")}


def test_the_cli_prints_the_match_rate_and_audits_the_load(tmp_path, store_with_people):
    path = store_with_people.engine.location
    store_with_people.close()
    file = partner_file(tmp_path / "acme.csv", [{"email_sha256": sha("ana.lopez@example.com"), "tier": "gold"},
                                                {"email_sha256": sha("nobody@example.com"), "tier": "gold"}])
    out = subprocess.run([sys.executable, "-m", "threadline", "profiles", "enrich", "--path", path, "--file", str(file),
                          "--source", "acme", "--key", "email_sha256"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "1 of 2 partner rows matched" in out.stdout and "50.0%" in out.stdout
    audit = subprocess.run([sys.executable, "-m", "threadline", "audit", "--path", path, "--action", "enrichment"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert audit.returncode == 0 and "acme" in audit.stdout, audit.stdout + audit.stderr
