"""Suppression lists: emails and phones never to put in an audience.

Each value is normalized the way the store normalizes identifiers (the same vectorized
normalizers), then compared with the *matching key* of every email and phone of every
record of a profile — so `J.Doe+news@Gmail.com` on the list suppresses a profile holding
`jdoe@gmail.com`, and `(415) 555-2671` with `phone_region: US` suppresses `+14155552671`.
A value that is neither a valid email nor a valid phone is counted, never shown.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from threadline.contracts import ConfigError

from threadline_profiles.config.audiences import SuppressionList
from threadline_profiles.resolve import normalize_bulk

COLUMN_WORDS = ("email", "mail", "phone", "mobile", "cell", "msisdn")


@dataclass
class Loaded:
    """One list, normalized: `keys` has columns field (email | phone) and key."""

    name: str
    keys: pa.Table
    unusable: int


def read_values(name: str, spec: SuppressionList) -> pa.Array:
    """Every raw value of a list: `values`, and the cells of the file's email/phone columns
    (or of every column, for a file without such a header)."""
    parts = [pa.array(spec.values, pa.string())]
    if spec.file is not None:
        path = Path(spec.file)
        if not path.is_file():
            raise ConfigError(f"suppression list {name!r}: file {str(path)!r} does not exist",
                              field=f"suppression.{name}.file", hint="give a CSV file of emails or phones, one a line")
        try:
            table = _read_csv(path)
        except (pa.ArrowInvalid, UnicodeDecodeError):
            # Arrow's message quotes the offending line, which is personal data: not shown
            raise ConfigError(f"suppression list {name!r}: {str(path)!r} cannot be read as CSV",
                              field=f"suppression.{name}.file",
                              hint="one value a line, or columns named email / phone; quote values holding commas") from None
        parts += [table.column(c).combine_chunks() for c in table.column_names]
    values = pa.concat_arrays(parts) if parts else pa.array([], pa.string())
    values = pc.utf8_trim_whitespace(values.filter(pc.is_valid(values)))
    return values.filter(pc.greater(pc.utf8_length(values), 0))


def _read_csv(path: Path) -> pa.Table:
    """The file's email/phone columns (or all, without such a header), every cell as text:
    a phone read as a number would lose its leading zero."""
    with path.open(newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
    named = [c for c in header if any(w in c.lower() for w in COLUMN_WORDS)]
    if named:
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in header}, include_columns=named, strings_can_be_null=True))
    names = [f"c{i}" for i in range(len(header))]  # no header naming them: the first line is a value too
    return pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=names),
                          convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in names},
                                                               strings_can_be_null=True))


def load(name: str, spec: SuppressionList) -> Loaded:
    """Normalize one list: values with an @ as emails, the rest as phones."""
    raw = read_values(name, spec)
    is_email = pc.match_substring(raw, "@")
    emails, phones = raw.filter(is_email), raw.filter(pc.invert(is_email))
    _, email_keys, email_status, _ = normalize_bulk.emails(emails)
    region = pa.array([spec.phone_region or ""] * len(phones), pa.string())
    phone_values, phone_status, _ = normalize_bulk.phones(phones, region)
    ok_emails = pc.equal(email_status, "ok")
    ok_phones = pc.equal(phone_status, "ok")
    keys = pa.concat_tables([
        pa.table({"field": pa.array(["email"] * int(pc.sum(ok_emails).as_py() or 0), pa.string()),
                  "key": pc.cast(email_keys.filter(ok_emails), pa.string())}),
        pa.table({"field": pa.array(["phone"] * int(pc.sum(ok_phones).as_py() or 0), pa.string()),
                  "key": pc.cast(phone_values.filter(ok_phones), pa.string())}),
    ])
    unusable = len(raw) - keys.num_rows
    return Loaded(name, keys, unusable)


def suppression_table(lists: dict[str, SuppressionList]) -> tuple[pa.Table, dict[str, int]]:
    """(list, field, key) for every usable value of every list, and per list how many values
    could not be used."""
    tables, unusable = [], {}
    for name, spec in lists.items():
        loaded = load(name, spec)
        unusable[name] = loaded.unusable
        tables.append(loaded.keys.append_column("list", pa.array([name] * loaded.keys.num_rows, pa.string())))
    schema = pa.schema([("field", pa.string()), ("key", pa.string()), ("list", pa.string())])
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    return table.select(["list", "field", "key"]), unusable


def check_lists(lists: dict[str, SuppressionList]) -> None:
    """Raise ConfigError when a list's file is missing or unreadable."""
    for name, spec in lists.items():
        read_values(name, spec)
