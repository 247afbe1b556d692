"""Connected components: large-star/small-star (Spark's) labels every graph as label
propagation (DuckDB's and Postgres') does, in few rounds even on a long chain."""

from __future__ import annotations

import os
import random

import pyarrow as pa
import pytest
from threadline_profiles.engines import DuckDBEngine
from threadline_profiles.resolve.components import propagated_components, star_components


@pytest.fixture
def engine(tmp_path):
    engine = DuckDBEngine(tmp_path / "c.duckdb", encryption="off")
    yield engine
    engine.close()


def labels(engine, edges: list[tuple[int, int]], algorithm) -> tuple[dict[int, int], int]:
    engine.load_table("e", pa.table({"a": pa.array([a for a, _ in edges], pa.int64()),
                                     "b": pa.array([b for _, b in edges], pa.int64())}))
    rounds = algorithm(engine, "e", "lab")
    return {r["node"]: r["label"] for r in engine.rows("SELECT node, label FROM lab")}, rounds


def test_star_components_label_random_graphs_like_label_propagation(engine):
    rng = random.Random(7)
    for n in (2, 30, 400):
        edges = [(rng.randrange(n), rng.randrange(n)) for _ in range(n)] + [(n + 5, n + 5)]  # and a lone self-loop
        star, _ = labels(engine, edges, star_components)
        propagated, _ = labels(engine, edges, propagated_components)
        assert star == propagated
        assert star[n + 5] == n + 5


def test_star_components_need_logarithmic_rounds_on_a_long_chain(engine):
    nodes = list(range(2000))
    random.Random(3).shuffle(nodes)  # a chain whose ids are not in order along it
    edges = list(zip(nodes, nodes[1:]))
    star, rounds = labels(engine, edges, star_components)
    assert set(star.values()) == {0} and len(star) == 2000
    assert rounds <= 2 * 11  # 2 log2(2000): a constant times log n, not the chain's length


def test_label_propagation_that_hits_its_round_cap_still_gives_one_component_per_chain(engine):
    nodes = list(range(600))
    random.Random(5).shuffle(nodes)
    edges = list(zip(nodes, nodes[1:])) + [(1000, 1001)]
    found, rounds = labels(engine, edges, lambda e, edges, out: propagated_components(e, edges, out, max_rounds=3))
    assert rounds > 3  # the cap was reached and the star rounds finished the job
    assert set(found.values()) == {0, 1000} and len(found) == 602


@pytest.mark.postgres
def test_postgres_runs_both_algorithms_to_the_same_labels(pg_schema):
    from threadline_profiles.engines.postgres_engine import PostgresEngine

    nodes = list(range(300))
    random.Random(9).shuffle(nodes)
    edges = list(zip(nodes, nodes[1:])) + [(500, 501), (502, 502)]
    engine = PostgresEngine(os.environ.get("THREADLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"), pg_schema)
    try:
        star, _ = labels(engine, edges, star_components)
        capped, rounds = labels(engine, edges, lambda e, edges, out: propagated_components(e, edges, out, max_rounds=2))
    finally:
        engine.close()
    assert rounds > 2 and star == capped
    assert set(star.values()) == {0, 500, 502}
