"""The build report says what a reader needs and nothing about anyone: profiles that come from
one source alone are called out, US postal codes that are no ZIP are counted, bars are to
scale, tables fit the page, and names and blocked values are masked."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from threadline_profiles import api
from threadline_profiles.report.page import histogram_svg
from threadline_profiles.testing import Lander

MAPPING = {
    "crm.contacts": {"identifiers": {"email": "email"}, "traits": {"last_name": "last_name"},
                     "address": {"postal_code": "zip", "country": "country"}},
    "x.followers": {"identifiers": {"handle": "social_handle"}},
}


def test_the_report_calls_out_one_source_profiles_and_us_codes_that_are_no_zip(store_config):
    lander = Lander({**store_config, "mappings": MAPPING})
    lander.land("crm", "contacts", [
        {"id": 1, "email": "a@example.com", "last_name": "Quillfeather", "zip": "5401", "country": "US"},
        {"id": 2, "email": "b@example.com", "last_name": "Lee", "zip": "12", "country": "US"},
        {"id": 3, "email": "c@example.com", "last_name": "Lee", "zip": "94103", "country": "US"},
        {"id": 4, "email": "d@example.com", "last_name": "Lee", "zip": "SW1A 1AA", "country": "GB"}])
    lander.land("x", "followers", [{"id": i, "handle": f"@fan{i}"} for i in range(6)])
    lander.build()
    with lander.store() as store:
        path = api.build(store).report_path
    text = open(path, encoding="utf-8").read()
    assert "60% of all profiles come from x alone" in text
    assert re.search(r"<td>leading zeros lost \(repaired in mail files\)</td><td>1</td>", text)
    assert re.search(r"<td>not a ZIP code \(refused in mail files\)</td><td>1</td>", text)
    assert "Quillfeather" not in text and "<td>Q.</td>" in text, "largest profiles show an initial"
    assert 'class=wide' in text and "overflow-x:auto" in text


def test_cluster_bars_are_to_scale_and_the_caption_is_outside_the_chart():
    svg = histogram_svg({1: 8000, 2: 500, 3: 1})
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    assert heights[0] / heights[1] == 16.0, "8,000 profiles draw a bar 16 times the 500's"
    assert 0 < heights[2] < 2, "a single profile still shows a sliver"
    assert "<figcaption" in svg and svg.index("<figcaption") > svg.index("</svg>")


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_a_run_landing_records_that_say_when_they_arrived_reports_their_latency(store_config, engine, request):
    """Each stage's seconds are at least how long ago the records arrived; the report shows them."""
    config = {**store_config, "resolve_on_finish": True, "mappings": {"site.web": {"identifiers": {"email": "email"}}}}
    if engine == "postgres":
        config = {**config, "engine": "postgres", "schema": request.getfixturevalue("pg_schema")}
    lander = Lander(config)
    arrived = datetime.now(timezone.utc) - timedelta(seconds=30)
    rows = [{"id": n, "email": f"p{n}@example.com", "received_at": arrived + timedelta(seconds=n)} for n in range(10)]
    schema = pa.schema([("id", pa.int64()), ("email", pa.string()), ("received_at", pa.timestamp("us", tz="UTC"))])
    lander.land("site", "web", rows, schema=schema, run_id="run-7", arrival_field="received_at")
    lander.land("crm", "contacts", [{"id": 1, "email": "p1@example.com"}], run_id="run-7")  # no arrival times
    [build] = lander.destination.finish_run(lander.config, "run-7")
    assert build.outcome == "succeeded"
    with lander.store() as store:
        [row] = store.engine.rows("SELECT run_id, stage, records, p50, p99 FROM tl_latency")
        report = store.engine.scalar("SELECT report FROM tl_builds")
    assert (row["run_id"], row["stage"], row["records"]) == ("run-7", "built", 10)
    assert 21 <= row["p50"] <= row["p99"]  # arrived 21 to 30 seconds before the build ended
    text = open(report, encoding="utf-8").read()
    assert "Event → audience latency" in text and "<td>run-7</td>" in text and "pushed p50" not in text
