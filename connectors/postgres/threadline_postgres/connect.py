"""Connections to Postgres, and the errors a person can act on.

Two drivers, each for what it does best: psycopg for catalog queries, slot management and
the replication connection (it speaks the simple query protocol a walsender needs), and the
ADBC PostgreSQL driver for reading rows, which turns binary COPY into Arrow in C++ (no Python
per row). Both take the same libpq DSN.

Errors name what is wrong and what to run: a refused password, a database or role that does
not exist, a server that does not answer, a missing privilege with the GRANT that gives it.
A password never appears in them (libpq's messages do not contain it, and `where()` drops it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from threadline.contracts import ConfigError, FatalError

APPLICATION_NAME = "threadline"
# pgoutput prints values with the session's settings: these make them parseable in bulk
SESSION_SETTINGS = {"TimeZone": "UTC", "DateStyle": "ISO", "IntervalStyle": "iso_8601",
                    "bytea_output": "hex", "extra_float_digits": "3"}


class ConnectionLost(FatalError):
    """The server went away in the middle of a read (a restart, a network cut, a terminated
    backend). What was committed stays; the next sync resumes from the last checkpoint."""


def where(dsn: str) -> str:
    """user@host:port/db of a DSN, without its password, for messages."""
    try:
        user = conninfo_to_dict(dsn).get("user")
    except psycopg.ProgrammingError:
        return "(unparsable dsn)"
    return f"{user}@{server(dsn)}" if user else server(dsn)


def server(dsn: str) -> str:
    """host:port/db of a DSN: where tables are, whoever connects (no user, no password)."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparsable dsn)"
    return f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}/{info.get('dbname', '')}"


def _options(settings: dict[str, str]) -> str:
    return " ".join(f"-c {k}={v}" for k, v in settings.items())


def connect(dsn: str, *, timeout: int = 10, replication: bool = False, field: str = "dsn") -> psycopg.Connection:
    """A psycopg connection (autocommit) with the session settings CDC relies on."""
    kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": timeout, "application_name": APPLICATION_NAME,
                              "options": _options(SESSION_SETTINGS)}
    if replication:
        kwargs["replication"] = "database"
    try:
        return psycopg.connect(dsn, **kwargs)
    except psycopg.ProgrammingError as exc:  # the DSN itself does not parse
        raise ConfigError(f"`{field}` is not a valid connection string ({str(exc).strip()})", field=field,
                          hint="write it as postgresql://user:password@host:5432/database or "
                               "'host=… port=… dbname=… user=…'") from None
    except psycopg.OperationalError as exc:
        raise connect_error(dsn, str(exc), field) from None


def connect_error(dsn: str, text: str, field: str = "dsn") -> ConfigError:
    """A failed connection, classified from libpq's message."""
    at = where(dsn)
    info = conninfo_to_dict(dsn) if at != "(unparsable dsn)" else {}
    user, db = info.get("user", "?"), info.get("dbname", "?")
    lower = text.lower()
    if "password authentication failed" in lower or "no password supplied" in lower:
        return ConfigError(f"Postgres at {at} refused the password of user {user!r}", field=field,
                           hint="check the user and password in the DSN (or the environment variable it comes from)")
    if "does not exist" in lower and "database" in lower:
        return ConfigError(f"database {db!r} does not exist on {at}", field=field,
                           hint=f"fix the database name in the DSN, or create it: CREATE DATABASE \"{db}\";")
    if "role" in lower and "does not exist" in lower:
        return ConfigError(f"role {user!r} does not exist on {at}", field=field,
                           hint=f"fix the user in the DSN, or create it: CREATE ROLE \"{user}\" LOGIN PASSWORD '…';")
    if "pg_hba.conf" in lower:
        return ConfigError(f"Postgres at {at} does not accept connections from this host for user {user!r}",
                           field=field, hint="add a line for this host and user to the server's pg_hba.conf "
                                             "(for replication, a `replication` line too), then reload it")
    if "permission denied for database" in lower or "not have connect" in lower:
        return ConfigError(f"user {user!r} may not connect to database {db!r}", field=field,
                           hint=f"GRANT CONNECT ON DATABASE \"{db}\" TO \"{user}\";")
    if "replication" in lower and ("permission" in lower or "must be" in lower):
        return ConfigError(f"user {user!r} may not open a replication connection to {at}", field=field,
                           hint=f"ALTER ROLE \"{user}\" WITH REPLICATION;")
    first = text.strip().splitlines()[0] if text.strip() else "no answer"
    return ConfigError(f"cannot connect to Postgres at {at}: {first}", field=field,
                       hint="check the host and port in the DSN and that the server is running and reachable")


@contextlib.contextmanager
def session(dsn: str, timeout: int = 10) -> Iterator[psycopg.Connection]:
    con = connect(dsn, timeout=timeout)
    try:
        yield con
    finally:
        con.close()


def bulk_connection(dsn: str, timeout: int = 10, autocommit: bool = True) -> Any:
    """An ADBC connection for bulk reads (autocommit: transactions are begun explicitly) and
    bulk writes (`autocommit=False`: every statement is in the transaction `commit()` ends)."""
    import adbc_driver_postgresql.dbapi as adbc

    try:
        # libpq takes `options` from the URI's query string too; ADBC passes the DSN to libpq as is
        con = adbc.connect(_with_options(dsn, timeout), autocommit=autocommit)
    except Exception as exc:  # noqa: BLE001 - the driver raises its own classes
        raise connect_error(dsn, str(exc)) from None
    return con


def _with_options(dsn: str, timeout: int) -> str:
    """The DSN as a key=value string, with the session settings and a connect timeout."""
    info = conninfo_to_dict(dsn)
    info.setdefault("connect_timeout", str(timeout))
    info["application_name"] = APPLICATION_NAME
    info["options"] = (info.get("options", "") + " " + _options(SESSION_SETTINGS)).strip()
    return " ".join(f"{k}='{_escape(str(v))}'" for k, v in info.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def is_connection_lost(exc: BaseException) -> bool:
    """Whether a driver error means the server or the network went away."""
    if isinstance(exc, psycopg.OperationalError):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("server closed the connection", "terminating connection", "connection reset",
                                   "no connection to the server", "could not receive data", "ssl syscall",
                                   "connection to server", "admin_shutdown", "57p01"))
