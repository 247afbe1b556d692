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


def test_the_report_charts_the_stored_agreement_models_match_weights_and_says_where_it_fell_back_to_priors(store_config):
    from synthetic_customers import customers

    data = customers(100, seed=3)
    lander = Lander({**store_config, "mappings": data.mappings})
    lander.land_tables(data.tables)
    with lander.store() as store:
        result = api.build(store)
        levels = store.engine.rows("SELECT comparison, level, weight FROM tl_model_levels WHERE version = 1")
        fell_back = store.engine.scalar("SELECT fell_back FROM tl_model WHERE version = 1")
    text = open(result.report_path, encoding="utf-8").read()
    assert "<h2>Agreement model</h2>" in text and "agreement model v1 fitted" in text
    chart = text[text.index('aria-label="match weights'):]
    chart = chart[:chart.index("</svg>")]
    assert len(re.findall(r"<rect ", chart)) == 1 + len(levels), "the prior and one bar per comparison level"
    for r in levels:
        name = {3: "exact", 2: "close", 1: "near", 0: "different"}[r["level"]]
        assert f">{r['comparison']}: {name}</text>" in chart
        assert f">{r['weight']:+.2f}</text>" in chart
    assert not fell_back and "The model did not fall back to priors" in text


def test_a_model_fitted_on_too_few_pairs_says_in_the_report_that_it_fell_back_to_the_priors(store_config):
    mapping = {"crm.people": {"identifiers": {"email": "email"},
                              "traits": {"first_name": "first", "last_name": "last", "birth_date": "dob"}}}
    lander = Lander({**store_config, "mappings": mapping})
    lander.land("crm", "people", [{"id": i, "email": f"p{i}@example.com", "first": "Ana", "last": f"Lee{'e' * (i % 3)}",
                                   "dob": f"1980-01-0{1 + i % 4}"} for i in range(8)])
    with lander.store() as store:
        path = api.build(store).report_path
        on = store.engine.scalar("SELECT fell_back_on FROM tl_model")
    text = open(path, encoding="utf-8").read()
    assert '"first_name"' in on and "The model fell back to the stated priors for " in text
    assert "first_name (0 matching pairs)" in text
    assert "--refit" in text


def test_the_model_section_says_when_no_comparison_fell_back_and_bars_point_by_their_sign():
    from threadline_profiles.report.model import render, weights_svg

    data = {"version": 3, "build_id": "b", "fitted_at": "2026-01-01 00:00:00", "records": 1000, "pairs_used": 5000,
            "matching_pairs": 400.0, "prior": -9.5, "threshold": 4.2, "from_priors": {},
            "levels": [{"comparison": "first_name", "level": 3, "weight": 3.0}, {"comparison": "first_name", "level": 0, "weight": -4.0}]}
    assert "did not fall back to priors" in render(data)
    svg = weights_svg([("for", 3.0), ("against", -4.0)])
    rects = re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg)
    zero = float(re.search(r'<line x1="([\d.]+)"', svg).group(1))
    (x_for, w_for), (x_against, w_against) = [(float(x), float(w)) for x, w in rects]
    assert x_for == zero and x_against + w_against == zero, "for: right of zero; against: left of it"
    assert w_against / w_for == pytest.approx(4.0 / 3.0, abs=0.01), "to scale"


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
