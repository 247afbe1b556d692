"""Connected components in SQL, by label propagation with pointer jumping.

Every node starts labelled with the smallest id among itself and its neighbours; each round
a node takes the smallest label among its neighbours, then the label of its label (the
jump, which halves long chains). When no label changes, every component is labelled with
its smallest node id. Each round is two CREATE TEMP TABLE statements and a count.
"""

from __future__ import annotations

from threadline_profiles.engines.base import Engine


def both_directions_sql(edges: str, out: str) -> str:
    return f"CREATE TEMP TABLE {out} AS SELECT a, b FROM {edges} UNION SELECT b AS a, a AS b FROM {edges}"


def initial_labels_sql(both: str, out: str) -> str:
    return f"CREATE TEMP TABLE {out} AS SELECT a AS node, LEAST(a, MIN(b)) AS label FROM {both} GROUP BY a"


def propagate_sql(both: str, labels: str, out: str) -> str:
    """One round: smallest neighbour label, then the label of that label."""
    return (
        f"CREATE TEMP TABLE {out} AS SELECT x.node, LEAST(x.label, COALESCE(j.label, x.label)) AS label FROM ("
        f"SELECT l.node, LEAST(l.label, MIN(n.label)) AS label FROM {labels} AS l "
        f"JOIN {both} AS e ON e.a = l.node JOIN {labels} AS n ON n.node = e.b GROUP BY l.node, l.label"
        f") AS x LEFT JOIN {labels} AS j ON j.node = x.label"
    )


def changed_sql(old: str, new: str) -> str:
    return f"SELECT COUNT(*) FROM {new} AS n JOIN {old} AS o ON o.node = n.node WHERE n.label <> o.label"


def connected_components(engine: Engine, edges: str, out: str, max_rounds: int = 200) -> int:
    """Label every node of `edges` (columns a, b) with its component's smallest node, into
    table `out` (node, label). Returns the number of rounds it took."""
    both, cur, nxt = f"{out}_both", f"{out}_l0", f"{out}_l1"
    engine.run([f"DROP TABLE IF EXISTS {t}" for t in (both, cur, nxt, out)])
    engine.run([both_directions_sql(edges, both), initial_labels_sql(both, cur)])
    rounds = 0
    while rounds < max_rounds:
        rounds += 1
        engine.run([f"DROP TABLE IF EXISTS {nxt}", propagate_sql(both, cur, nxt)])
        changed = engine.scalar(changed_sql(cur, nxt))
        cur, nxt = nxt, cur
        if not changed:
            break
    engine.run([f"CREATE TEMP TABLE {out} AS SELECT node, label FROM {cur}",
                f"DROP TABLE IF EXISTS {both}", f"DROP TABLE IF EXISTS {cur}", f"DROP TABLE IF EXISTS {nxt}"])
    return rounds
