"""threadline-events: a collector for Segment-compatible tracking calls and vendor webhooks, a
durable log, and the `events` source that reads it (see README.md)."""
