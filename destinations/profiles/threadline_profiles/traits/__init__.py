"""Stage 6: facts (orders, events, tickets), computed traits and consent per channel."""
