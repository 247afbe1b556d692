"""Stage 1, land: each source stream's batches into raw tables, with lineage; which columns map to what."""
