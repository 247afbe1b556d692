"""`threadline serve`: the profile lookup API, with tokens, roles, rate limits and the audit log.

    tokens.py     API tokens: made once, kept hashed, revocable
    access.py     roles (what each may do, what each may see) and the exact-identifier rule
    ratelimit.py  a bounded sliding-window limit per token
    app.py        the Starlette app (its OpenAPI document is built from the endpoints)
    cli.py        `threadline serve` and `threadline serve token create|revoke|list`
"""
