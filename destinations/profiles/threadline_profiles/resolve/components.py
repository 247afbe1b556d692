"""Connected components in SQL: every node labelled with its component's smallest node.

Two implementations of the one stage, both plain SQL in DuckDB's dialect:

- label propagation with pointer jumping (DuckDB, Postgres): every node starts labelled with
  the smallest id among itself and its neighbours; each round a node takes the smallest label
  among its neighbours, then the label of its label (the jump, which halves long chains).
  Each round is two work-table statements and a count. Cheap rounds, but a long
  chain needs many of them.
- large-star / small-star (Kiveris et al., "Connected Components in MapReduce and Beyond",
  2014; Spark): the edges themselves are rewritten until every component is a star around
  its smallest node, in O(log n) rounds whatever the graph's diameter. On Spark every round
  is written to a table, which cuts the lineage the way a checkpoint does: no round's plan
  grows with the rounds before it.
"""

from __future__ import annotations

from threadline_profiles.engines.base import Engine, work_table


def both_directions_sql(edges: str, out: str) -> str:
    return work_table(out, f"AS SELECT a, b FROM {edges} UNION SELECT b AS a, a AS b FROM {edges}")


def initial_labels_sql(both: str, out: str) -> str:
    return work_table(out, f"AS SELECT a AS node, LEAST(a, MIN(b)) AS label FROM {both} GROUP BY a")


def propagate_sql(both: str, labels: str, out: str) -> str:
    """One round: smallest neighbour label, then the label of that label."""
    return (
        work_table(out, f"AS SELECT x.node, LEAST(x.label, COALESCE(j.label, x.label)) AS label FROM ("
                        f"SELECT l.node, LEAST(l.label, MIN(n.label)) AS label FROM {labels} AS l "
                        f"JOIN {both} AS e ON e.a = l.node JOIN {labels} AS n ON n.node = e.b GROUP BY l.node, l.label"
                        f") AS x LEFT JOIN {labels} AS j ON j.node = x.label")
    )


def changed_sql(old: str, new: str) -> str:
    return f"SELECT COUNT(*) FROM {new} AS n JOIN {old} AS o ON o.node = n.node WHERE n.label <> o.label"


def connected_components(engine: Engine, edges: str, out: str, max_rounds: int = 200) -> int:
    """Label every node of `edges` (columns a, b) with its component's smallest node, into
    table `out` (node, label). Returns the number of rounds it took."""
    if engine.dialect in STAR_DIALECTS:
        return star_components(engine, edges, out, max_rounds)
    return propagated_components(engine, edges, out, max_rounds)


# Engines whose rounds are expensive (a distributed shuffle and a table write each): they take
# the algorithm with the fewest rounds.
STAR_DIALECTS = {"spark"}


def propagated_components(engine: Engine, edges: str, out: str, max_rounds: int = 200) -> int:
    """Label propagation with pointer jumping (the module's doc)."""
    both, cur, nxt = f"{out}_both", f"{out}_l0", f"{out}_l1"
    engine.run([f"DROP TABLE IF EXISTS {t}" for t in (both, cur, nxt, out)])
    engine.run([both_directions_sql(edges, both), initial_labels_sql(both, cur)])
    rounds, changed = 0, 1
    while changed and rounds < max_rounds:
        rounds += 1
        engine.run([f"DROP TABLE IF EXISTS {nxt}", propagate_sql(both, cur, nxt)])
        changed = engine.scalar(changed_sql(cur, nxt))
        cur, nxt = nxt, cur
    if changed:
        # a long chain whose ids are out of order along it can need more rounds than the cap;
        # stopping there would split one person's records into several profiles without a
        # word, so the labels are finished by large-star/small-star, whose rounds are O(log n)
        engine.run([f"DROP TABLE IF EXISTS {t}" for t in (both, cur, nxt)])
        return rounds + star_components(engine, edges, out)
    engine.run([work_table(out, f"AS SELECT node, label FROM {cur}"),
                f"DROP TABLE IF EXISTS {both}", f"DROP TABLE IF EXISTS {cur}", f"DROP TABLE IF EXISTS {nxt}"])
    return rounds


# ------------------------------------------------------------------ large-star / small-star
# Edges are kept oriented, a > b, without self-loops: a node's `b`s are its smaller neighbours.


def oriented_sql(edges: str, out: str) -> str:
    return (work_table(out, f"AS SELECT DISTINCT GREATEST(a, b) AS a, LEAST(a, b) AS b FROM {edges} "
                            "WHERE a <> b"))


def large_star_sql(edges: str, out: str) -> str:
    """Every node u hands its larger neighbours to m(u), the smallest of u and its neighbours."""
    return (
        work_table(
            out,
            f"AS WITH nb AS (SELECT a AS u, b AS v FROM {edges} UNION ALL "
            f"SELECT b AS u, a AS v FROM {edges}), m AS (SELECT u, LEAST(u, MIN(v)) AS m FROM nb GROUP BY u) "
            "SELECT DISTINCT nb.v AS a, m.m AS b FROM nb JOIN m ON m.u = nb.u WHERE nb.v > nb.u")
    )


def small_star_sql(edges: str, out: str) -> str:
    """Every node u links itself and its smaller neighbours to the smallest of those."""
    return (
        work_table(out, f"AS WITH m AS (SELECT a AS u, MIN(b) AS m FROM {edges} GROUP BY a) "
                        f"SELECT e.b AS a, m.m AS b FROM {edges} AS e JOIN m ON m.u = e.a WHERE e.b <> m.m "
                        "UNION SELECT u AS a, m AS b FROM m")
    )


def not_stars_sql(edges: str) -> str:
    """How far the edges are from stars around their smallest nodes: nodes with two parents,
    plus edges whose parent has a parent. Zero means done."""
    return (f"SELECT (SELECT COUNT(*) FROM (SELECT a FROM {edges} GROUP BY a HAVING COUNT(*) > 1) AS x) + "
            f"(SELECT COUNT(*) FROM {edges} WHERE b IN (SELECT a FROM {edges}))")


def star_labels_sql(edges: str, stars: str, out: str) -> str:
    """Every node of the original edges: its star's centre, or itself when it is one."""
    return (
        work_table(
            out,
            f"AS WITH nodes AS (SELECT a AS node FROM {edges} UNION SELECT b AS node FROM {edges}) "
            f"SELECT n.node, COALESCE(s.b, n.node) AS label FROM nodes AS n LEFT JOIN {stars} AS s ON s.a = n.node")
    )


def star_components(engine: Engine, edges: str, out: str, max_rounds: int = 200) -> int:
    """Large-star then small-star until every component is one star (the module's doc)."""
    cur, nxt = f"{out}_s0", f"{out}_s1"
    engine.run([f"DROP TABLE IF EXISTS {t}" for t in (cur, nxt, out)] + [oriented_sql(edges, cur)])
    rounds = 0
    while rounds < max_rounds:
        rounds += 1
        engine.run([f"DROP TABLE IF EXISTS {nxt}", large_star_sql(cur, nxt), f"DROP TABLE {cur}",
                    small_star_sql(nxt, cur), f"DROP TABLE {nxt}"])
        if not engine.scalar(not_stars_sql(cur)):
            break
    engine.run([star_labels_sql(edges, cur, out), f"DROP TABLE IF EXISTS {cur}"])
    return rounds
