"""Stages 3-5: normalize identifiers, resolve records into profiles with stable ids, merge golden records."""
