"""Checking a mapping against the streams it names, before any run."""

from __future__ import annotations

import difflib

from threadline.contracts import ConfigError

from threadline_profiles.config import ProfilesConfig, StreamMapping


def check_mapping(key: str, mapping: StreamMapping, columns: list[str]) -> None:
    """Raise ConfigError when the mapping of stream `key` names a column the stream lacks.

    The error names the config path (``mappings.<source.stream>.<path>``) and the column,
    and lists the columns the stream does have.
    """
    have = set(columns)
    for path, column in mapping.columns_by_path().items():
        if column in have:
            continue
        close = difflib.get_close_matches(column, columns, n=1)
        suggestion = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"mapping for stream {key!r} names column {column!r}, which the stream does not have{suggestion}",
            field=f"mappings.{key}.{path}",
            hint=f"the stream's columns are: {', '.join(columns)}",
        )


def check_all(config: ProfilesConfig, streams: dict[str, list[str]]) -> None:
    """Check every mapping whose stream is in `streams` ("source.stream" -> its columns)."""
    for key, mapping in config.mappings.items():
        if key in streams:
            check_mapping(key, mapping, streams[key])
