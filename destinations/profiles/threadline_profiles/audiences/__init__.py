"""Stage 7: the audience filter language, membership with history, suppression."""
