"""Enrichment on hashed keys: a partner's file of SHA-256 emails or phones with attributes
joins to our profiles without our identifiers leaving the machine — we hash ours the way
partners hash theirs and compare digests.

The forms we hash (and the partner must have hashed), as ad platforms and data partners agree:

- email: trimmed and lower-cased (`ann.lee@gmail.com`), and also our matching form
  (`annlee@gmail.com`, Gmail dots and +tags dropped) — either matches;
- phone: E.164 digits without the `+` (`15125550142`), or with it (`+15125550142`).

A file in the wrong form is refused with the reason, before anything is kept:

- plain values (an `@`, a phone number) or anything but 64 hex characters (SHA-256 as hex);
- digests of identifiers that were not normalized: when more of its digests match our
  identifiers hashed as written (capitals, spaces, a phone's punctuation or missing country
  code) than normalized, the partner's normalization is wrong and matching would miss people
  silently.

Consent: partner attributes reach only profiles whose latest consent statement for the
purpose `enrichment` (any channel) is a grant; none is a denial. Rows of other profiles are
not kept, and a profile whose consent is withdrawn later stops showing them at once.

Kept in `tl_enrichment` (one row per matched digest, source and attribute, with the kind
it matched on); a new file from the same source replaces that source's rows. Lookups show
the attributes in the golden record with lineage `source = enrichment:<source>`, where our
own data has no value for that field (first-party data wins).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from threadline.contracts import ConfigError

from threadline_profiles.engines.base import lit
from threadline_profiles.resolve.lookup import GoldenValue

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore

PURPOSE = "enrichment"
TABLE = "tl_enrichment"
# Keyed by digest, not profile id: a later build may merge or split profiles, and a lookup
# finds the rows again from the profile's own identifiers.
CREATE = (f"CREATE TABLE IF NOT EXISTS {TABLE} (source VARCHAR, digest VARCHAR, matched_on VARCHAR, attribute VARCHAR, "
          "value VARCHAR, file VARCHAR, loaded_at TIMESTAMP)")
KINDS = ("email", "phone")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SOURCE = re.compile(r"[a-z][a-z0-9_]*")


class PartnerFileError(ConfigError):
    """The partner file cannot be used as it is (wrong hash form, missing column)."""


@dataclass
class EnrichResult:
    source: str
    kind: str
    rows: int  # partner rows with a digest
    matched: int  # partner rows whose digest is one of our profiles' identifiers
    profiles_matched: int
    profiles_enriched: int  # matched and consenting: their attributes are kept
    withheld_no_consent: int
    attributes: list[str] = field(default_factory=list)

    @property
    def match_rate(self) -> float:
        return self.matched / self.rows if self.rows else 0.0

    def describe(self) -> str:
        return (f"{self.source}: {self.matched} of {self.rows} partner rows matched a profile by {self.kind} "
                f"({self.match_rate:.1%}); {self.profiles_enriched} profiles enriched with "
                f"{', '.join(self.attributes) or 'no attributes'}, {self.withheld_no_consent} matched profiles "
                f"withheld (no consent to `{PURPOSE}`)")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- our digests


def _email_forms(raw: str, value: str) -> tuple[set[str], set[str]]:
    """(normalized forms, as-written forms that differ from them) of one email."""
    good = {raw.strip().lower(), value}
    bad = {raw, raw.strip()} - good
    return good, bad


def _phone_forms(raw: str, value: str) -> tuple[set[str], set[str]]:
    digits = value.lstrip("+")
    good = {digits, value}
    national = re.sub(r"\D", "", raw)
    bad = {raw, raw.strip(), national} - good - {""}
    return good, bad


def our_digests(store: ProfileStore, kind: str, profile_id: str | None = None) -> tuple[dict[str, set[str]], set[str]]:
    """digest of a normalized form -> profile ids, and the digests of as-written forms (of
    every profile, or of one)."""
    forms = _email_forms if kind == "email" else _phone_forms
    good: dict[str, set[str]] = {}
    bad: set[str] = set()
    one = f" AND m.profile_id = {lit(profile_id)}" if profile_id else ""
    rows = store.engine.query(
        "SELECT m.profile_id, v.raw, v.value FROM tl_record_values AS v JOIN tl_members AS m ON m.record_key = v.record_key "
        f"WHERE v.field = {lit(kind)} AND v.status = 'ok'{one}").to_pylist()
    for r in rows:
        normal, written = forms(str(r["raw"]), str(r["value"]))
        for text in normal:
            good.setdefault(sha256_hex(text), set()).add(r["profile_id"])
        bad.update(sha256_hex(text) for text in written)
    return good, bad - set(good)


# ---------------------------------------------------------------- the partner file


def read_partner(path: Path) -> pa.Table:
    if not path.exists():
        raise PartnerFileError(f"there is no partner file at {path}")
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    import pyarrow.csv as pcsv

    # Every column as text: a digest is not a number, and attributes are shown as written.
    names = pcsv.read_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 16)).column_names
    return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names}))


def check_digests(values: list[str | None], column: str, kind: str) -> list[str]:
    """The digests, lower-cased; a PartnerFileError naming rows (never values) when any is not
    a SHA-256 hex digest."""
    out: list[str] = []
    plain: list[int] = []
    other: list[int] = []
    for row, value in enumerate(values, start=2):  # row 1 is the header
        text = (value or "").strip().lower()
        if not text:
            continue
        if _HEX64.fullmatch(text):
            out.append(text)
        elif "@" in text or re.fullmatch(r"[+()\d\s.-]{7,20}", text):
            plain.append(row)
        else:
            other.append(row)
    if plain:
        raise PartnerFileError(
            f"the partner file's column {column!r} holds plain {kind}s, not SHA-256 digests "
            f"({len(plain)} values, first at row {plain[0]}); nothing was loaded",
            hint=f"ask the partner for SHA-256 hex digests of normalized {kind}s ({_FORM[kind]})")
    if other:
        raise PartnerFileError(
            f"the partner file's column {column!r} holds values that are not SHA-256 hex digests "
            f"(64 hex characters): {len(other)} values, first at row {other[0]}; nothing was loaded",
            hint=f"ask the partner for SHA-256 hex digests of normalized {kind}s ({_FORM[kind]})")
    return out


_FORM = {"email": "trimmed and lower-cased", "phone": "E.164 digits with the country code, e.g. 15125550142"}


def kind_of(column: str, kind: str | None) -> str:
    if kind:
        return kind
    for k in KINDS:
        if k in column.lower():
            return k
    raise PartnerFileError(f"cannot tell whether the column {column!r} holds emails or phones",
                           hint="say which with --kind email|phone")


# ---------------------------------------------------------------- consent


def consenting(store: ProfileStore, profile_id: str | None = None) -> set[str]:
    """Profiles whose latest statement for the purpose `enrichment` (any channel) grants it
    (at the same time a denial wins)."""
    if not store.engine.table_exists("tl_consent"):
        return set()
    one = f" AND profile_id = {lit(profile_id)}" if profile_id else ""
    rows = store.engine.rows(
        'SELECT profile_id FROM (SELECT profile_id, granted, ROW_NUMBER() OVER (PARTITION BY profile_id '
        f'ORDER BY "at" DESC, granted ASC) AS rn FROM tl_consent WHERE purpose = {lit(PURPOSE)}{one}) AS s '
        "WHERE rn = 1 AND granted")
    return {r["profile_id"] for r in rows}


# ---------------------------------------------------------------- loading


def enrich(store: ProfileStore, path: Path, *, source: str, key: str | None = None, kind: str | None = None,
           attributes: list[str] | None = None) -> EnrichResult:
    """Match a partner file to the profiles and keep the attributes of consenting matches."""
    if not _SOURCE.fullmatch(source):
        raise ConfigError(f"source name {source!r} must be lower-case letters, digits and underscores")
    table = read_partner(Path(path))
    if key is None:  # the one digest column, by its name
        named = [c for c in table.column_names if "sha256" in c.lower()]
        if len(named) != 1:
            raise PartnerFileError(f"say which column of the partner file holds the digests ({len(named)} are named *sha256*)",
                                   hint=f"give --key; its columns: {', '.join(table.column_names)}")
        key = named[0]
    if key not in table.column_names:
        raise PartnerFileError(f"the partner file has no column {key!r}",
                               hint=f"its columns: {', '.join(table.column_names)}")
    kind = kind_of(key, kind)
    if kind not in KINDS:
        raise ConfigError(f"--kind must be one of {', '.join(KINDS)}")
    wanted = attributes or [c for c in table.column_names if c != key]
    missing = [c for c in wanted if c not in table.column_names]
    if missing:
        raise PartnerFileError(f"the partner file has no column {missing[0]!r}")
    digests = check_digests(table.column(key).to_pylist(), key, kind)
    if not store.engine.table_exists("tl_record_values"):
        raise ConfigError("the profile store has no profiles yet", hint="run `threadline profiles build` first")

    good, written = our_digests(store, kind)
    matched = [d for d in digests if d in good]
    as_written = [d for d in digests if d in written]
    if len(as_written) > len(matched):
        raise PartnerFileError(
            f"the partner hashed {kind}s that were not normalized: {len(as_written)} of its {len(digests)} digests "
            f"match our {kind}s hashed as written (capitals, spaces, punctuation, no country code), only "
            f"{len(matched)} match them normalized; nothing was loaded",
            hint=f"ask the partner to hash {kind}s {_FORM[kind]}")

    allowed = consenting(store)
    rows: list[dict[str, Any]] = []
    profiles: set[str] = set()
    withheld: set[str] = set()
    values = {c: table.column(c).to_pylist() for c in wanted}
    for i, raw in enumerate(table.column(key).to_pylist()):
        digest = (raw or "").strip().lower()
        holders = good.get(digest, set())
        withheld |= holders - allowed
        if not holders & allowed:  # a digest of nobody who consented is not kept at all
            continue
        profiles |= holders & allowed
        rows.extend({"digest": digest, "attribute": c, "value": str(values[c][i])}
                    for c in wanted if values[c][i] not in (None, ""))
    engine = store.engine
    data = pa.Table.from_pylist(rows, schema=pa.schema([("digest", pa.string()), ("attribute", pa.string()),
                                                       ("value", pa.string())]))
    with store.lock, engine.transaction():
        engine.execute(CREATE)
        engine.execute(f"DELETE FROM {TABLE} WHERE source = {lit(source)}")
        engine.register_arrow("tl_enrichment_new", data)
        try:
            engine.execute(
                f"INSERT INTO {TABLE} SELECT DISTINCT {lit(source)}, digest, {lit(kind)}, attribute, value, "
                f"{lit(Path(path).name)}, CURRENT_TIMESTAMP FROM tl_enrichment_new")
        finally:
            engine.unregister("tl_enrichment_new")
    return EnrichResult(source, kind, len(digests), len(matched), len({p for d in matched for p in good[d]}),
                        len(profiles), len(withheld - profiles), wanted)


def golden_values(store: ProfileStore, profile_id: str) -> dict[str, GoldenValue]:
    """The enriched attributes a consenting profile shows, with their source as lineage."""
    if not store.engine.table_exists(TABLE) or profile_id not in consenting(store, profile_id):
        return {}
    digests = sorted({d for kind in KINDS for d in our_digests(store, kind, profile_id)[0]})
    if not digests:
        return {}
    out: dict[str, GoldenValue] = {}
    for r in store.engine.rows(f"SELECT * FROM {TABLE} WHERE digest IN ({', '.join(lit(d) for d in digests)}) "
                               "ORDER BY source, attribute, value"):
        out.setdefault(r["attribute"], GoldenValue(
            r["value"], f"enrichment:{r['source']}", r["file"], f"enrichment:{r['source']}:{r['matched_on']}_sha256",
            str(r["loaded_at"]), "enrichment"))
    return out


def forget(store: ProfileStore, profile_id: str) -> int:
    """Delete the partner rows found by a profile's identifiers (before its records go)."""
    if not store.engine.table_exists(TABLE):
        return 0
    digests = sorted({d for kind in KINDS for d in our_digests(store, kind, profile_id)[0]})
    if not digests:
        return 0
    where = f"digest IN ({', '.join(lit(d) for d in digests)})"
    count = int(store.engine.scalar(f"SELECT COUNT(*) FROM {TABLE} WHERE {where}") or 0)
    store.engine.run([f"DELETE FROM {TABLE} WHERE {where}"])
    return count
