"""`target-threadline`: any installed threadline destination, run as a Singer target.

    tap-something | target-threadline --config config.json

with a config naming the destination and its own config:

    {"connector": "duckdb", "config": {"path": "warehouse.duckdb"}, "disposition": "upsert"}

Built on singer-sdk: records are collected per stream into batches, each batch becomes one
Arrow record batch (column by column, not row by row), is written and committed, and only
then does the SDK print the STATE that came before it — so the state a Singer runner saves
is always backed by committed rows.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from singer_sdk import Target
from singer_sdk.sinks import BatchSink

from threadline.contracts import FatalError, Stream, StreamTarget, WriteDisposition
from threadline.names import safe_name_for
from threadline_singer.export.common import CONFIG_SCHEMA, load_connector, run_cli
from threadline_singer.records import RecordParser
from threadline_singer.schema import json_schema_to_arrow


class ThreadlineSink(BatchSink):
    """One Singer stream written through a threadline destination's StreamWriter."""

    max_size = 10_000

    def __init__(self, target: Target, stream_name: str, schema: dict, key_properties: list[str] | None) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        destination, config = target.destination  # type: ignore[attr-defined]
        arrow_schema = json_schema_to_arrow(schema)
        keys = tuple(k for k in (key_properties or []) if arrow_schema.get_field_index(k) >= 0)
        stream = Stream(name=stream_name, schema=arrow_schema, primary_key=keys)
        chosen = self.config.get("disposition")
        disposition = WriteDisposition(chosen) if chosen else (
            WriteDisposition.UPSERT if keys else WriteDisposition.APPEND
        )
        self._parser = RecordParser(arrow_schema)
        table = target.table_for(stream_name)  # type: ignore[attr-defined]
        self._writer = destination.open_stream(
            config,
            StreamTarget(
                source=self.config.get("source_name") or "singer",
                stream=stream,
                disposition=disposition,
                table=table,
                run_id=target.run_id,  # type: ignore[attr-defined]
            ),
        )

    def process_batch(self, context: dict) -> None:
        """Write the collected records as one Arrow batch and commit them."""
        parsed = self._parser.parse_records(context.get("records") or [])
        if parsed.rejected:
            # Singer has nowhere to put rejected rows: stop rather than drop them silently
            raise FatalError(
                f"{len(parsed.rejected)} records of stream {self.stream_name!r} do not fit its schema; "
                f"the first: {parsed.rejected[0][1]}",
                where="target-threadline",
                hint="nothing from this batch was written and its state was not confirmed; "
                "fix the tap's schema or its records and run again",
            )
        if parsed.batch is not None and parsed.batch.num_rows:
            self._writer.write(parsed.batch)
        self._writer.commit()

    def clean_up(self) -> None:
        """The stream ended: finish it in the destination (a `replace` swaps the table here)."""
        report = self._writer.finish()
        self.logger.info(
            "stream %s: %d rows written, %d rejected", self.stream_name, report.rows_written, report.rows_rejected,
        )
        super().clean_up()


class TargetThreadline(Target):
    """A Singer target writing into the threadline destination named in its config."""

    name = "target-threadline"
    config_jsonschema = CONFIG_SCHEMA
    default_sink_class = ThreadlineSink

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run_id = f"singer-{time.strftime('%Y%m%dT%H%M%S')}"
        self._destination: tuple[Any, Any] | None = None
        self._tables: dict[str, str] = {}  # table name -> the stream written there

    def table_for(self, stream_name: str) -> str:
        """The table a stream is written to: its own name when that is a safe name, else the
        name with each run of other characters made `_` (what Singer targets commonly do, so
        `test:SpecialChars!in?attributes` lands in `test_SpecialChars_in_attributes`)."""
        table = safe_name_for(stream_name)
        earlier = self._tables.setdefault(table, stream_name)
        if earlier != stream_name:
            raise FatalError(
                f"streams {earlier!r} and {stream_name!r} would both be written to table {table!r}; "
                "rename one in the tap's catalog (stream_maps in Meltano) so their safe names differ"
            )
        if table != stream_name:
            self.logger.info("stream %r is written to table %r", stream_name, table)
        return table

    @property
    def destination(self) -> tuple[Any, Any]:
        """(destination connector, validated config), loaded on first use."""
        if self._destination is None:
            connector, config = load_connector("destination", dict(self.config))
            connector.check(config)
            self._destination = (connector, config)
        return self._destination


def main() -> None:
    """Console script `target-threadline`."""
    run_cli(TargetThreadline.cli)


__all__ = ["FatalError", "TargetThreadline", "main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
