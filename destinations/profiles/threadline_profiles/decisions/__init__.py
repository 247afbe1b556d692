"""Stage 8, decisions: which campaign each person gets (engine), counted against the contacts
the platforms accepted (contacts)."""
