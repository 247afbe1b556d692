"""Activation: audiences out to platforms.

- `prepare` — normalizing and hashing members the way each platform wants them, in bulk
  (DuckDB macros over Arrow): what an audience destination's `prepare` is written with.
- `runner` — the generic push: check the minimum, prepare, diff against a ledger of what the
  platform holds, send removes then adds in the platform's batch size, and move the ledger
  with each confirmed answer. The ledger is a small interface (`runner.Ledger`) that a store
  implements in its own engine; the profile store's is `threadline_profiles.activation.push`.

The audience contract itself (`AudienceDestination`, `AudienceWriter`, `MEMBER_SCHEMA` …)
is in `threadline.contracts`, with every other contract.
"""

from threadline.activation.prepare import MACROS, prepare_members, sha256_hex

__all__ = ["MACROS", "prepare_members", "sha256_hex"]
