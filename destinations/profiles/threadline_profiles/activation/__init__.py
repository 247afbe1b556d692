"""Stage 9 and 11: pushes as diffs against a ledger, and erasure (forget)."""
