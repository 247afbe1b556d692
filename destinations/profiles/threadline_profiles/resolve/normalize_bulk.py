"""Vectorized normalizers for the kinds that come by the million: emails and phones.

They give the same answers as `normalize.normalize_email` / `normalize_phone` for the
values they accept, using Arrow compute kernels (RE2 regexes) instead of a Python loop.
Phones use libphonenumber's own metadata (the general national number pattern and the
possible lengths of every region sharing a calling code: well formed, assigned or not); whatever the fast path cannot accept goes to
`phonenumbers` one value at a time, so the slow path only sees the odd values.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import PhoneMetadata, country_code_for_region
from phonenumbers.data import _COUNTRY_CODE_TO_REGION_CODE

from threadline_profiles.resolve.normalize import (
    _DOTLESS_DOMAINS,
    _PLUS_TAG_DOMAINS,
    IDENTIFIER_KINDS,
    NORMALIZERS,
    normalize_email,
    normalize_phone,
    normalize_text,
    phone_general_patterns,
)
from threadline_profiles.resolve.placeholders import Blocklist, placeholder_candidates

_EMAIL_RE2 = (
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)

def emails(raw: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """(value, key, status, reason) for each raw email."""
    text = pc.utf8_lower(pc.utf8_trim_whitespace(raw))
    simple = pc.and_(pc.match_substring_regex(text, _EMAIL_RE2), pc.less_equal(pc.utf8_length(text), 254))
    # Values the fast path cannot settle (mailto:, <...>, invalid ones needing a reason) go
    # through the scalar normalizer, so that both paths agree exactly.
    local = pc.replace_substring_regex(text, r"@.*$", "")
    simple = pc.and_(simple, pc.less_equal(pc.utf8_length(local), 64))
    domain = pc.replace_substring_regex(text, r"^.*@", "")
    domain = pc.if_else(pc.equal(domain, "googlemail.com"), "gmail.com", domain)
    plus = pc.is_in(domain, pa.array(sorted(_PLUS_TAG_DOMAINS)))
    key_local = pc.if_else(plus, pc.replace_substring_regex(local, r"\+.*$", ""), local)
    dotless = pc.is_in(domain, pa.array(sorted(_DOTLESS_DOMAINS)))
    key_local = pc.if_else(dotless, pc.replace_substring(key_local, ".", ""), key_local)
    key = pc.binary_join_element_wise(key_local, domain, "@")
    return _patch(simple, [text, key, _fill(len(raw), "ok"), _fill(len(raw), "")], raw,
                  lambda v: (lambda r: (r.value, r.key, r.status, r.reason))(normalize_email(v)))


def _fill(n: int, value: str) -> pa.Array:
    return pa.array([value] * n, pa.string()) if n < 64 else pa.repeat(pa.scalar(value, pa.string()), n)


def _patch(ok: pa.Array, columns: list[pa.Array], *inputs_and_fallback) -> tuple[pa.Array, ...]:
    """Keep the vectorized `columns` where `ok`; elsewhere use the scalar fallback's answer."""
    *inputs, fallback = inputs_and_fallback
    bad = pc.invert(pc.fill_null(ok, False))
    where = pc.indices_nonzero(bad)
    if len(where) == 0:
        return tuple(columns)
    args = [pc.take(x, where).to_pylist() for x in inputs]
    answers = list(zip(*(fallback(*row) for row in zip(*args))))
    return tuple(pc.replace_with_mask(col, bad, pa.array(list(ans), pa.string())) for col, ans in zip(columns, answers))


@lru_cache(maxsize=None)
def _valid_pattern(calling_code: int) -> str | None:
    """One anchored RE2 pattern: any well-formed national number of this code (its regions'
    general patterns, assigned ranges or not; see normalize.well_formed_phone)."""
    parts = phone_general_patterns(calling_code)
    return "^(?:" + "|".join(f"(?:{p})" for p in parts) + ")$" if parts else None


@lru_cache(maxsize=None)
def _length_pattern(calling_code: int) -> str | None:
    """One anchored RE2 pattern: a national number of a possible length (local-only lengths,
    which need an area code to dial, are not)."""
    lengths = set()
    for region in _COUNTRY_CODE_TO_REGION_CODE.get(calling_code, ()):
        meta = PhoneMetadata.metadata_for_region(region) or PhoneMetadata.metadata_for_nongeo_region(calling_code)
        if meta is not None and meta.general_desc is not None:
            lengths |= set(meta.general_desc.possible_length or ())
    return "^(?:" + "|".join(f"[0-9]{{{n}}}" for n in sorted(lengths) if n > 0) + ")$" if lengths else None


@lru_cache(maxsize=None)
def _national_prefix(region: str) -> str:
    meta = PhoneMetadata.metadata_for_region(region)
    return (meta.national_prefix or "") if meta else ""


def phones(raw: pa.Array, region: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(value in E.164, status, reason) for each raw phone with its source's region."""
    n = len(raw)
    digits = pc.replace_substring_regex(raw, r"[^0-9+]", "")
    digits = pc.if_else(pc.starts_with(digits, "00"), pc.binary_join_element_wise("+", pc.utf8_slice_codeunits(digits, 2), ""), digits)
    international = pc.starts_with(digits, "+")
    intl = pc.if_else(international, pc.utf8_slice_codeunits(digits, 1), pa.nulls(n, pa.string()))
    for reg in pc.unique(region).to_pylist():
        if not reg:
            continue
        code = country_code_for_region(reg)
        if not code:
            continue
        mine = pc.and_(pc.invert(international), pc.equal(region, reg))
        national = digits
        prefix = _national_prefix(reg)
        pattern = _valid_pattern(code)
        if prefix and pattern:
            stripped = pc.utf8_slice_codeunits(digits, len(prefix))
            use_stripped = pc.and_(pc.starts_with(digits, prefix), pc.match_substring_regex(stripped, pattern))
            national = pc.if_else(use_stripped, stripped, digits)
        intl = pc.if_else(mine, pc.binary_join_element_wise(str(code), national, ""), intl)
    accepted = pa.repeat(pa.scalar(False), n) if n else pa.array([], pa.bool_())
    lengths = pc.utf8_length(intl)
    for width in (1, 2, 3):
        head = pc.utf8_slice_codeunits(intl, 0, width)
        for code in pc.unique(pc.filter(head, pc.fill_null(pc.greater(lengths, width), False))).to_pylist():
            if code is None or not code.isdigit() or int(code) not in _COUNTRY_CODE_TO_REGION_CODE:
                continue
            pattern, sizes = _valid_pattern(int(code)), _length_pattern(int(code))
            if pattern is None or sizes is None:
                continue
            mine = pc.fill_null(pc.equal(head, code), False)
            national = pc.utf8_slice_codeunits(intl, width)
            valid = pc.fill_null(pc.and_(pc.match_substring_regex(national, pattern),
                                         pc.match_substring_regex(national, sizes)), False)
            accepted = pc.or_(accepted, pc.and_(mine, valid))
    e164 = pc.binary_join_element_wise("+", intl, "")
    return _patch(accepted, [e164, _fill(n, "ok"), _fill(n, "")], raw, region,
                  lambda v, reg: (lambda r: (r.value, r.status, r.reason))(normalize_phone(v, reg or "")))


def codes(raw: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """Customer and device ids: trimmed, exact."""
    text = pc.utf8_trim_whitespace(raw)
    empty = pc.equal(pc.utf8_length(text), 0)
    null = pa.nulls(len(raw), pa.string())
    return (pc.if_else(empty, null, text), pc.if_else(empty, null, text),
            pc.if_else(empty, "invalid", "ok"), pc.if_else(empty, "empty", ""))


def loyalty_cards(raw: pa.Array, separators: str = r"[\s-]+") -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """Loyalty cards (and national ids, whose separators are anything but letters and
    digits): separators out, upper-case."""
    key = pc.utf8_upper(pc.replace_substring_regex(raw, separators, ""))
    empty = pc.equal(pc.utf8_length(key), 0)
    null = pa.nulls(len(raw), pa.string())
    return (pc.if_else(empty, null, pc.utf8_trim_whitespace(raw)), pc.if_else(empty, null, key),
            pc.if_else(empty, "invalid", "ok"), pc.if_else(empty, "empty", ""))


def normalize_distinct(values: pa.Table, blocklist: Blocklist) -> pa.Table:
    """Normalize a table of distinct (kind, hint, raw) values.

    Returns the same rows with value, match_key, status and reason added. Identifiers that
    are placeholders or configured as blocked get status "blocked". Emails, phones, ids and
    cards (the kinds that come by the million) go through Arrow kernels; the rest, with few
    distinct values, one at a time.
    """
    parts = []
    kinds = values.column("kind")
    for kind in pc.unique(kinds).to_pylist():
        sub = values.filter(pc.equal(kinds, kind))
        raw, hint = sub.column("raw").combine_chunks(), sub.column("hint").combine_chunks()
        if kind == "email":
            value, key, status, reason = emails(raw)
        elif kind == "phone":
            value, status, reason = phones(raw, hint)
            key = value
        elif kind in ("customer_id", "device_id"):
            value, key, status, reason = codes(raw)
        elif kind == "loyalty_card":
            value, key, status, reason = loyalty_cards(raw)
        elif kind == "national_id":
            value, key, status, reason = loyalty_cards(raw, r"[^0-9A-Za-z]+")
        else:
            fn = NORMALIZERS.get(kind, normalize_text)
            results = [fn(r, h or "") for r, h in zip(raw.to_pylist(), hint.to_pylist())]
            value = pa.array([r.value for r in results], pa.string())
            key = pa.array([r.key for r in results], pa.string())
            status = pa.array([r.status for r in results], pa.string())
            reason = pa.array([r.reason for r in results], pa.string())
        if kind in IDENTIFIER_KINDS:
            status, reason = _apply_blocklist(kind, key, status, reason, blocklist)
        parts.append(pa.table({"kind": sub.column("kind"), "hint": hint, "raw": raw, "value": value, "match_key": key,
                               "status": status, "reason": reason}))
    if not parts:
        return pa.table({c: pa.array([], pa.string()) for c in ("kind", "hint", "raw", "value", "match_key", "status", "reason")})
    return pa.concat_tables(parts)


def _apply_blocklist(kind: str, key: pa.Array, status: pa.Array, reason: pa.Array,
                     blocklist: Blocklist) -> tuple[pa.Array, pa.Array]:
    ok = pc.equal(status, "ok")
    maybe = placeholder_candidates(kind, key, blocklist.values, blocklist.patterns)
    check = ok if maybe is None else pc.and_(ok, maybe)
    where = pc.indices_nonzero(check)
    if len(where) == 0:
        return status, reason
    whys = [blocklist.reason(kind, k or "") for k in pc.take(key, where).to_pylist()]
    hit = [i for i, w in zip(where.to_pylist(), whys) if w]
    if not hit:
        return status, reason
    mask = pa.array(np.isin(np.arange(len(key)), hit))
    return (pc.replace_with_mask(status, mask, pa.array(["blocked"] * len(hit), pa.string())),
            pc.replace_with_mask(reason, mask, pa.array([w for w in whys if w], pa.string())))
