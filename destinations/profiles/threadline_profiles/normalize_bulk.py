"""Vectorized normalizers for the kinds that come by the million: emails and phones.

They give the same answers as `normalize.normalize_email` / `normalize_phone` for the
values they accept, using Arrow compute kernels (RE2 regexes) instead of a Python loop.
Phones use libphonenumber's own metadata (the national number patterns of every number
type of every region sharing a calling code); whatever the fast path cannot accept goes to
`phonenumbers` one value at a time, so the slow path only sees the odd values.
"""

from __future__ import annotations

from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import PhoneMetadata, country_code_for_region
from phonenumbers.data import _COUNTRY_CODE_TO_REGION_CODE

from threadline_profiles.normalize import (
    _DOTLESS_DOMAINS,
    _PLUS_TAG_DOMAINS,
    normalize_email,
    normalize_phone,
)

_EMAIL_RE2 = (
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)
_TYPES = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number", "voip", "pager",
          "uan", "voicemail")


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
    """One anchored RE2 pattern: any valid national number of any region of this code."""
    parts = []
    for region in _COUNTRY_CODE_TO_REGION_CODE.get(calling_code, ()):
        meta = PhoneMetadata.metadata_for_region(region) or PhoneMetadata.metadata_for_nongeo_region(calling_code)
        if meta is None:
            continue
        for t in _TYPES:
            desc = getattr(meta, t, None)
            if desc is not None and desc.national_number_pattern:
                parts.append(desc.national_number_pattern)
    return "^(?:" + "|".join(f"(?:{p})" for p in parts) + ")$" if parts else None


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
            pattern = _valid_pattern(int(code))
            if pattern is None:
                continue
            mine = pc.fill_null(pc.equal(head, code), False)
            valid = pc.fill_null(pc.match_substring_regex(pc.utf8_slice_codeunits(intl, width), pattern), False)
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


def placeholder_candidates(kind: str, key: pa.Array, values: frozenset[str], patterns: tuple) -> pa.Array | None:
    """Rows that might be blocked (the scalar check then gives the reason); None means the
    configured patterns cannot run as RE2, so every row must be checked."""
    from threadline_profiles.normalize import (
        PLACEHOLDER_CODES,
        PLACEHOLDER_EMAIL_DOMAINS,
        PLACEHOLDER_EMAIL_LOCALS,
        PLACEHOLDER_EMAILS,
    )

    lower = pc.utf8_lower(key)
    mask = pc.is_in(lower, pa.array(sorted(values), pa.string()))
    for pattern in patterns:
        try:
            mask = pc.or_(mask, pc.match_substring_regex(key, pattern.pattern, ignore_case=True))
        except pa.ArrowInvalid:
            return None
    if kind == "email":
        local = pc.replace_substring_regex(lower, r"@.*$", "")
        domain = pc.replace_substring_regex(lower, r"^.*@", "")
        mask = pc.or_(mask, pc.or_(pc.is_in(lower, pa.array(sorted(PLACEHOLDER_EMAILS))),
                                   pc.or_(pc.is_in(local, pa.array(sorted(PLACEHOLDER_EMAIL_LOCALS))),
                                          pc.is_in(domain, pa.array(sorted(PLACEHOLDER_EMAIL_DOMAINS))))))
    elif kind == "phone":
        same = "|".join(str(d) * 10 for d in range(10))
        mask = pc.or_(mask, pc.match_substring_regex(key, rf"({same}|1234567890|0123456789|9876543210)$|^\+1\d{{3}}55501"))
    else:
        mask = pc.or_(mask, pc.or_(pc.is_in(lower, pa.array(sorted(PLACEHOLDER_CODES))), pc.match_substring_regex(key, r"^[0\- ]+$")))
        if kind == "national_id":
            same = "|".join(f"{d}+" for d in range(10))
            mask = pc.or_(mask, pc.match_substring_regex(key, rf"^({same}|123456789|987654321)$"))
    return pc.fill_null(mask, False)
