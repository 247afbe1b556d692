"""Addresses a push ledger must keep, kept sealed: encrypted, and compared by a keyed digest.

Some platforms find a member only by their address (Klaviyo looks profiles up by email), so
the ledger needs it to remove them later, even after the store forgot them. A destination
names such columns in `ledger_encrypted`; the ledger then keeps, for each,

- the value encrypted with AES-256-GCM (`tl1:` + base64 of nonce and ciphertext), under a key
  derived from the store's secret (`secret.py`): a copy of the store without the secret holds
  no address, and a byte search of the file finds none;
- `_tl_digest_<column>`: HMAC-SHA256 of the value under another derived key, which the diff
  compares with the members' current values, computed by DuckDB in bulk on the Arrow data
  before the store's engine compares them (the diff touches every member of every push;
  encryption only touches rows entering or leaving the ledger).

`unseal` gives the writer back the plain values of the rows it must remove.
"""

from __future__ import annotations

import base64
import os

import pyarrow as pa

from threadline_profiles.activation.secret import StoreSecret
from threadline_profiles.engines.base import lit, quote

PREFIX = "tl1:"
_AAD = b"threadline push ledger"


def digest_column(column: str) -> str:
    return f"_tl_digest_{column}"


class Seal:
    """Encrypts and digests the `columns` of ledger rows with keys derived from one secret."""

    def __init__(self, columns: tuple[str, ...], secret: StoreSecret) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.columns = columns
        self._aead = AESGCM(secret.derive("ledger encryption"))
        self._mac_key = secret.derive("ledger digest")
        padded = self._mac_key.ljust(64, b"\0")  # HMAC's own padding of a short key
        self._ipad = bytes(b ^ 0x36 for b in padded).hex()
        self._opad = bytes(b ^ 0x5C for b in padded).hex()

    @property
    def digests(self) -> list[str]:
        return [digest_column(c) for c in self.columns]

    def digest_sql(self, column_sql: str) -> str:
        """HMAC-SHA256 (hex) of a VARCHAR expression, in DuckDB's SQL (RFC 2104 spelt out:
        DuckDB has SHA-256 but no HMAC)."""
        inner = f"unhex(sha256(unhex({lit(self._ipad)}) || encode({column_sql})))"
        return f"CASE WHEN {column_sql} IS NULL THEN NULL ELSE sha256(unhex({lit(self._opad)}) || {inner}) END"

    def digests_of(self, values: pa.Array | pa.ChunkedArray) -> pa.Array:
        """The digest of each value (NULL stays NULL), computed by DuckDB in bulk on the Arrow data."""
        import duckdb

        con = duckdb.connect()
        try:
            con.execute("SET threads TO 2")
            con.register("v", pa.table({"x": values}))
            return con.sql(f"SELECT {self.digest_sql('x')} AS d FROM v").to_arrow_table().column("d").combine_chunks()
        finally:
            con.close()

    def with_digests(self, rows: pa.Table) -> pa.Table:
        """`rows` (plain) with the digest of each sealed column added, so that the store's
        engine (DuckDB or Postgres) compares digests as plain text."""
        for column in self.columns:
            rows = rows.append_column(digest_column(column), self.digests_of(rows.column(column)))
        return rows

    def seal(self, rows: pa.Table) -> pa.Table:
        """Rows as the ledger keeps them: sealed columns encrypted, digests added (values that
        are sealed already, from an older ledger being converted, keep their digest). Digests
        are computed in bulk; encryption is one AES-GCM call per value."""
        import pyarrow.compute as pc

        for column in self.columns:
            values = rows.column(column).combine_chunks().cast(pa.string())
            if pc.any(pc.starts_with(values, PREFIX)).as_py():  # an older ledger's rows, sealed once already
                values = pa.array([self._open(v) for v in values.to_pylist()], pa.string())
            close = self._close
            sealed = pa.array([None if v is None else close(v) for v in values.to_pylist()], pa.string())
            rows = rows.set_column(rows.schema.get_field_index(column), column, sealed)
            name = digest_column(column)
            if name in rows.column_names:
                rows = rows.drop_columns([name])
            rows = rows.append_column(name, self.digests_of(values).cast(pa.string()))
        return rows

    def unseal(self, rows: pa.Table) -> pa.Table:
        """Ledger rows as the writer wants them: sealed columns decrypted, no digests."""
        for column in self.columns:
            if column in rows.column_names:
                plain = [self._open(v) for v in rows.column(column).to_pylist()]
                rows = rows.set_column(rows.schema.get_field_index(column), column, pa.array(plain, pa.string()))
        return rows.drop_columns([d for d in self.digests if d in rows.column_names])

    def _close(self, value: str) -> str:
        nonce = os.urandom(12)
        return PREFIX + base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, value.encode(), _AAD)).decode()

    def _open(self, value: str | None) -> str | None:
        if value is None or not value.startswith(PREFIX):
            return value  # plain, from a ledger written before the column was sealed
        raw = base64.urlsafe_b64decode(value[len(PREFIX):])
        return self._aead.decrypt(raw[:12], raw[12:], _AAD).decode()
