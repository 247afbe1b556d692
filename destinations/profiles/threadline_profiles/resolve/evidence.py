"""Stage 4, clustering: conflicts settled by evidence, across rules, in one pass.

Every candidate link (each rule's edges and the agreement rule's, after the conflict guard)
is clustered at once:

1. components   — connected components over all links, ignoring limits (SQL).
2. within limits — a component holding no more distinct values of a limited type than the
                   limit (at most one CRM id, say) and no never-merge pair is one profile as it
                   is: every link in it would have been accepted in any order.
3. over a limit — the links of the other components are weighed (`Weigher`) and accepted one
                   at a time, strongest evidence first, skipping any that would push a merged
                   group over a limit. So where a limit refuses a link, the weakest links of the
                   component give way, whichever rule found them and whatever order the records
                   arrived in. Always-merge pairs go first and are never refused.

A link's weight is a match weight, log2 of how much likelier its two records are one person
than two: the agreement model's weight of every compared field at the level the two records
reach (`agreement.FieldModel.weights`: the same fields and levels the agreement rule scores
its own pairs on, without the term frequencies, which depend on which records a build
resolves), plus IDENTIFIER_WEIGHT for a shared identifier the model does not compare (a
phone, a card, a customer id). Where the first names and birth dates do not on balance say
one person, the place fields count once, by the strongest of them (a family shares its
street, postal code and city whole: see agreement.score_sql). Without the agreement model the
weight is in points over first, middle and last name and birth date (exact +2, close +1,
near 0, different -2), plus 2 for a shared identifier. Equal weights fall back to the rules'
priority order, then to the record numbers, so a build is deterministic.

Refused links — by a limit here, by the conflict guard before (`link.guard_and_agree`) — go
to tl_work_refused as record pairs with their rule, reason and weight; they are published
as tl_links_refused, and `profiles get --explain` shows those of a profile's records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pyarrow as pa

from threadline_profiles.engines.base import Engine, lit, work_table
from threadline_profiles.resolve import agreement
from threadline_profiles.resolve.components import connected_components

REFUSED = "tl_work_refused"  # (rid, anchor, rule, reason, weight): links the guards or a limit refused
PENDING = "tl_work_refused_g"  # (rid, anchor, rule, reason): links the guards refused, until weigh_refused weighs them
CLUSTERS = "tl_work_cl"  # (rid, cid) for every record in a cluster of two or more
MANUAL_RULE = "always_merge"

# A shared identifier the model does not compare (a phone, a loyalty card, a customer id):
# the weight of exact agreement on a code at the stated priors (m 0.88, u 1 in 100,000),
# the same for every identifier, so that only the person fields and the rules' order tell
# two identifier links apart.
IDENTIFIER_WEIGHT = math.log2(agreement._M_PRIOR[agreement.EXACT] / agreement._U_PRIOR_EXACT["code"])
# Without the model: points per field and level, and for a shared identifier.
POINT_FIELDS = ("first_name", "middle_name", "last_name", "birth_date")
POINTS = {agreement.EXACT: 2.0, agreement.CLOSE: 1.0, agreement.NEAR: 0.0, agreement.DIFFERENT: -2.0}
IDENTIFIER_POINTS = 2.0
# Two accounts of one system are one person where their records name one person: first and
# last names agree (exact, or one edit), and so do the birth dates where both records have
# one, or else the street addresses (or the names are near — two edits, a short form — and
# both the birth dates and the streets agree). A family shares a last name and a street,
# never a first name and a birth date (twins have two first names).
SAME_PERSON = ("first_name", "last_name", "birth_date", "address_line1")
WORK = ("tl_work_e", "tl_work_lab", "tl_work_group_bad", "tl_work_greedy", "tl_work_refused_w", "tl_work_contested",
        "tl_work_contested_v")
# Contested links settled in Python at a time: whole components, about this many links (a
# component with more is settled alone). Each held link costs a few hundred bytes of Python
# objects; all of them at once took a 10M-record build from 2.1 to 5.4 GB.
SETTLE_BATCH = 250_000


@dataclass
class Weigher:
    """What a link weighs: per compared field and level a weight, the place fields counted
    once where first names and birth dates do not say one person, and the bonus of a shared
    identifier for the rules in `identifier_rules`."""

    fields: list[str]
    weights: list[dict[int, float]]
    identifier_rules: set[str] = field(default_factory=set)
    identifier_weight: float = IDENTIFIER_WEIGHT
    person: list[str] = field(default_factory=list)  # tl_work_person's columns

    @classmethod
    def of(cls, model: agreement.AgreementModel | None, person_fields: list[str],
           identifier_rules: dict[str, str]) -> Weigher:
        """`identifier_rules`: rule name -> the field it shares (email_canonical shares
        `email`), for the rules matching one identifier."""
        if model is not None:
            names = [f.name for f in model.fields]
            return cls(names, [f.weights() for f in model.fields],
                       {r for r, t in identifier_rules.items() if t not in names}, person=list(person_fields))
        names = [f for f in POINT_FIELDS if f in person_fields]
        return cls(names, [dict(POINTS) for _ in names], set(identifier_rules), IDENTIFIER_POINTS, list(person_fields))

    def same_person_sql(self, x: str, y: str) -> str:
        """1 where records x and y name one person (SAME_PERSON), else 0."""
        if not {"first_name", "last_name"} <= set(self.person):
            return "0"
        level = {f: agreement.level_sql(f, x, y) if f in self.person else "NULL" for f in SAME_PERSON}
        # Names two edits off (a typo, a short form: Jon, Jonathan) are enough where the birth
        # date AND the street agree too: twins have two first names, not one misspelt.
        return (f"CASE WHEN (({level['first_name']}) >= {agreement.CLOSE} AND ({level['last_name']}) >= {agreement.CLOSE} "
                f"AND (({level['birth_date']}) = {agreement.EXACT} OR (({level['birth_date']}) IS NULL "
                f"AND ({level['address_line1']}) = {agreement.EXACT}))) OR (({level['first_name']}) >= {agreement.NEAR} "
                f"AND ({level['last_name']}) >= {agreement.NEAR} AND ({level['birth_date']}) = {agreement.EXACT} "
                f"AND ({level['address_line1']}) = {agreement.EXACT}) THEN 1 ELSE 0 END")

    def _terms(self) -> list[str]:
        out = []
        for i, w in enumerate(self.weights):
            cases = " ".join(f"WHEN {lvl} THEN {_num(v)}" for lvl, v in sorted(w.items()))
            out.append(f"COALESCE(CASE l{i} {cases} END, 0)")
        return out

    def _place_once_sql(self) -> str | None:
        """What counting the place fields once takes off (None: fewer than two of them)."""
        terms = self._terms()
        person = [terms[i] for i, f in enumerate(self.fields) if f in agreement.PERSON_TELLING]
        place = [terms[i] for i, f in enumerate(self.fields) if f in agreement.PLACE_FIELDS]
        if len(place) < 2:
            return None
        return (f"CASE WHEN {' + '.join(person) or '0'} <= 0 "
                f"THEN {' + '.join(place)} - GREATEST({', '.join(place)}) ELSE 0 END")

    def _identifier_sql(self, rule: str, then: str, otherwise: str) -> str:
        names = ", ".join(lit(r) for r in sorted(self.identifier_rules))
        return f"CASE WHEN {rule} IN ({names}) THEN {then} ELSE {otherwise} END"

    def weight_sql(self, rule: str = "rule") -> str:
        """The weight, from the level columns (l0, l1, ...) and the rule column of a row."""
        total = " + ".join(self._terms()) or "0"
        once = self._place_once_sql()
        if once:
            total += f" - {once}"
        if self.identifier_rules:
            total += f" + {self._identifier_sql(rule, _num(self.identifier_weight), '0')}"
        # exact decimals: the same order of links on DuckDB and Postgres
        return f"CAST({total} AS DECIMAL(12, 3))"

    def detail_sql(self, rule: str = "rule") -> str:
        """What the weight is made of, as `explain` shows it: each field both records have,
        its level (= exact, ~ close, ≈ near, ≠ different) and weight (`last_name=+10.1`),
        `places once` where the place fields counted once, and the shared identifier
        (`identifier+16.4`). No values."""
        marks = {agreement.EXACT: "=", agreement.CLOSE: "~", agreement.NEAR: "≈", agreement.DIFFERENT: "≠"}
        parts = []
        for i, (name, w) in enumerate(zip(self.fields, self.weights)):
            cases = " ".join(f"WHEN {lvl} THEN {lit(f'{name}{marks[lvl]}{v:+.1f} ')}" for lvl, v in sorted(w.items()))
            parts.append(f"COALESCE(CASE l{i} {cases} END, '')")
        once = self._place_once_sql()
        if once:
            parts.append(f"CASE WHEN {once} > 0 THEN 'places once ' ELSE '' END")
        if self.identifier_rules:
            parts.append(self._identifier_sql(rule, lit(f"identifier{self.identifier_weight:+.1f}"), "''"))
        return f"TRIM({' || '.join(parts)})" if parts else "''"

    def weighed_sql(self, pairs: str, extra: tuple[str, ...] = (), same_person: bool = False) -> str:
        """`pairs` (rid, anchor, rule and the `extra` columns) with each row's weight (and
        whether its records name one person, column `same`)."""
        cols = ["rid", "anchor", "rule", *extra]
        weighed = f"{self.weight_sql()} AS weight, {self.detail_sql()} AS detail"
        if not self.fields and not self.person:  # (no person fields: tl_work_person does not exist)
            return f"SELECT {', '.join(cols)}, {weighed}{', 0 AS same' if same_person else ''} FROM {pairs} AS p"
        levels = agreement.levels_select(self.fields, "px", "py") if self.fields else "NULL AS l_none"
        same = f", {self.same_person_sql('px', 'py')} AS same" if same_person else ""
        return (f"SELECT {', '.join(cols)}, {weighed}{', same' if same_person else ''} FROM ("
                f"SELECT {', '.join('p.' + c for c in cols)}, {levels}{same} FROM {pairs} AS p "
                "LEFT JOIN tl_work_person AS px ON px.rid = p.rid LEFT JOIN tl_work_person AS py ON py.rid = p.anchor) AS w")


def _num(value: float) -> str:
    return repr(round(float(value), 6))


def refused_table_sql() -> list[str]:
    return [f"DROP TABLE IF EXISTS {REFUSED}",
            work_table(REFUSED, f"(rid BIGINT, anchor BIGINT, rule VARCHAR, reason VARCHAR, weight DECIMAL(12, 3), "
                                "detail VARCHAR)"),
            f"DROP TABLE IF EXISTS {PENDING}",
            work_table(PENDING, f"(rid BIGINT, anchor BIGINT, rule VARCHAR, reason VARCHAR)")]


def refuse_sql(select: str) -> str:
    """Record the links of `select` (rid, anchor, rule, reason), unweighed until `weigh_refused`."""
    return f"INSERT INTO {PENDING} SELECT r.rid, r.anchor, r.rule, r.reason FROM ({select}) AS r"


def weigh_refused(engine: Engine, weigher: Weigher) -> None:
    """Add the links the guards refused to the refused links, with their weight. (They wait
    in a table of their own, so that weighing them writes only them: weighed in place, every
    refused link was deleted and written again.)"""
    if engine.scalar(f"SELECT COUNT(*) FROM {PENDING}"):
        if weigher.fields:
            agreement.require_comparisons(engine)
        engine.run(f"INSERT INTO {REFUSED} SELECT rid, anchor, rule, reason, weight, detail "
                   f"FROM ({weigher.weighed_sql(PENDING, ('reason',))}) AS w")
    engine.run(f"DROP TABLE {PENDING}")


# --------------------------------------------------------------------------- clustering


def pairs_sql() -> str:
    """tl_work_e: each record pair some link joins (a < b)."""
    return (work_table("tl_work_e", "AS SELECT DISTINCT LEAST(rid, anchor) AS a, GREATEST(rid, anchor) AS b "
                                    "FROM tl_work_edges WHERE rid <> anchor"))


def over_limit_sql() -> str:
    """tl_work_group_bad: the components holding more values of a limited type than allowed
    (a never-merge pair is a type allowing one of its two sides)."""
    return (
        work_table("tl_work_group_bad", "AS SELECT DISTINCT g.label FROM ("
                                        "SELECT l.label, k.ctype, COUNT(DISTINCT k.cvalue) AS n FROM tl_work_lab AS l "
                                        "JOIN tl_work_constraints AS k ON k.rid = l.node GROUP BY l.label, k.ctype"
                                        ") AS g JOIN tl_work_limits AS m ON m.ctype = g.ctype WHERE g.n > m.max_values")
    )


def contested_sql(weigher: Weigher, order: list[str]) -> tuple[str, str]:
    """tl_work_contested and tl_work_contested_v: the links and constraint values of the
    components over a limit, each with its component's label, the links weighed (see
    `batch_sql` for the order they are settled in)."""
    bad = "(SELECT label FROM tl_work_group_bad)"
    priority = " ".join(f"WHEN {lit(r)} THEN {i}" for i, r in enumerate(order))
    edges = ("(SELECT e.rid, e.anchor, e.rule, l.label FROM tl_work_edges AS e JOIN tl_work_lab AS l ON l.node = e.rid "
             f"WHERE l.label IN {bad} AND e.rid <> e.anchor)")
    # (no `detail`: it is written for the refused links alone, by weigh_refused)
    return (
        work_table("tl_work_contested", f"AS SELECT label, rid, anchor, rule, weight, same, "
                                        f"CASE rule {priority} ELSE {len(order)} END AS priority "
                                        f"FROM ({weigher.weighed_sql(edges, ('label',), same_person=True)}) AS w"),
        work_table("tl_work_contested_v", "AS SELECT l.label, k.rid, k.ctype, k.cvalue FROM tl_work_constraints AS k "
                                          f"JOIN tl_work_lab AS l ON l.node = k.rid WHERE l.label IN {bad}"),
    )


def batch_sql(first: int, last: int) -> tuple[str, str]:
    """The contested links and values of the components labelled `first` to `last`, links
    strongest first: always-merge pairs, then weight, the rules' priority, the record numbers.
    (Links act only within their component, so settling the components a batch at a time
    gives what settling them all at once in this order gives.)"""
    where = f"WHERE label BETWEEN {int(first)} AND {int(last)}"
    return (f"SELECT rid, anchor, rule, weight, same FROM tl_work_contested {where} "
            f"ORDER BY CASE WHEN rule = {lit(MANUAL_RULE)} THEN 0 ELSE 1 END, weight DESC, priority, rid, anchor",
            f"SELECT rid, ctype, cvalue FROM tl_work_contested_v {where}")


def batches(sizes: pa.Table, most: int) -> list[tuple[int, int]]:
    """Ranges of labels (first, last) holding whole components of about `most` links at most
    (a larger component alone), from `sizes` (label, n) ordered by label."""
    labels, counts = sizes.column("label").to_pylist(), sizes.column("n").to_pylist()
    out: list[tuple[int, int]] = []
    start, held = 0, 0
    for i, n in enumerate(counts):
        if held and held + n > most:
            out.append((labels[start], labels[i - 1]))
            start, held = i, 0
        held += n
    if held:
        out.append((labels[start], labels[-1]))
    return out


@dataclass
class Refusal:
    rid: int
    anchor: int
    rule: str
    weight: float
    ctype: str
    position: int = -1  # the link's place in the order settled


def settle(links: list[tuple[int, int, str, float]], values: list[tuple[int, str, str]],
           limits: dict[str, int], same_person: set[int] | None = None,
           yielding: set[str] | None = None) -> tuple[dict[int, int], list[Refusal]]:
    """Accept links (rid, anchor, rule, weight) one at a time in the order given, skipping any
    that would give a merged group more values of a type than its limit. Always-merge links
    are never refused; the links at the positions in `same_person` (whose records name one
    person) are not refused by the limits of the `yielding` types (a system's customer ids:
    two accounts of one person). Returns each record's cluster (its smallest record) and the
    refusals."""
    same_person, yielding = same_person or set(), yielding or set()
    parent: dict[int, int] = {}
    held: dict[int, dict[str, set[str]]] = {}
    for rid, ctype, cvalue in values:
        held.setdefault(rid, {}).setdefault(ctype, set()).add(cvalue)

    def root(x: int) -> int:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    refused: list[Refusal] = []
    for i, (rid, anchor, rule, weight) in enumerate(links):
        ra, rb = root(rid), root(anchor)
        if ra == rb:
            continue
        va, vb = held.get(ra, {}), held.get(rb, {})
        if rule != MANUAL_RULE:
            over = sorted(t for t in set(va) | set(vb) if _over(va.get(t, set()), vb.get(t, set()), limits.get(t, 10**9)))
            if over and not (i in same_person and set(over) <= yielding):
                refused.append(Refusal(rid, anchor, rule, weight, over[0], position=i))
                continue
        keep, gone = min(ra, rb), max(ra, rb)
        parent[gone] = keep
        parent.setdefault(keep, keep)
        merged = held.setdefault(keep, {})
        for t, vals in held.pop(gone, {}).items():
            merged.setdefault(t, set()).update(vals)
    return {x: root(x) for x in parent}, refused


def _over(a: set[str], b: set[str], limit: int) -> bool:
    """Whether joining groups holding values `a` and `b` of a type breaks its limit: the
    union holds more than the limit and more than either group already held (a group past
    the limit by an always-merge pair or two accounts of one person takes links that bring
    no new value)."""
    union = len(a | b)
    return union > limit and union > max(len(a), len(b))


def reason_of(ctype: str) -> str:
    return "never-merge pair" if ctype.startswith("never_merge:") else f"profile limit on {ctype}"


@dataclass
class ClusterStats:
    rounds: int = 0
    contested_links: int = 0  # links weighed because their component was over a limit


def cluster(engine: Engine, order: list[str], limits: dict[str, int], constrained: bool, weigher: Weigher,
            drops: str, yielding: set[str] | None = None) -> ClusterStats:
    """tl_work_cl from tl_work_edges, every rule at once (see the module's doc). Refused links
    go to tl_work_refused and are counted in `drops` (rid, rule, reason, links). The limits of
    the `yielding` types (a system's customer ids) give way to links whose records name one
    person (SAME_PERSON)."""
    stats = ClusterStats()
    engine.run([f"DROP TABLE IF EXISTS {t}" for t in WORK] + [f"DROP TABLE IF EXISTS {CLUSTERS}", pairs_sql()])
    if not engine.scalar("SELECT COUNT(*) FROM tl_work_e"):
        engine.run(work_table(CLUSTERS, f"(rid BIGINT, cid BIGINT)"))
        return stats
    stats.rounds = connected_components(engine, "tl_work_e", "tl_work_lab")
    if constrained:
        engine.run(over_limit_sql())
    if not constrained or not engine.scalar("SELECT COUNT(*) FROM tl_work_group_bad"):
        engine.run([work_table(CLUSTERS, f"AS SELECT node AS rid, label AS cid FROM tl_work_lab"),
                    *[f"DROP TABLE IF EXISTS {t}" for t in WORK]])
        return stats
    if weigher.fields:  # the levels compare names with Levenshtein (fuzzystrmatch on Postgres)
        agreement.require_comparisons(engine)
    engine.run(list(contested_sql(weigher, order)))
    sizes = engine.query("SELECT label, COUNT(*) AS n FROM tl_work_contested GROUP BY label ORDER BY label")
    greedy: list[pa.Table] = []
    refused: list[pa.Table] = []  # (columns, not Refusal objects: a batch's are let go with it)
    for first, last in batches(sizes, SETTLE_BATCH):
        links_sql, values_sql = batch_sql(first, last)
        # Columns, not row dicts, and a batch of components at a time: every Python object
        # per link costs. Each rule name is one shared string (to_pylist makes one per row),
        # and a link's `detail` is written for the refused ones only (weigh_refused).
        found, owned = engine.query(links_sql), engine.query(values_sql)
        rules = found.column("rule").combine_chunks().dictionary_encode()
        names = rules.dictionary.to_pylist()
        links = list(zip(found.column("rid").to_pylist(), found.column("anchor").to_pylist(),
                         [names[i] for i in rules.indices.to_pylist()], found.column("weight").cast(pa.float64()).to_pylist()))
        same = {i for i, s in enumerate(found.column("same").to_pylist()) if s}
        held = list(zip(*(owned.column(c).to_pylist() for c in ("rid", "ctype", "cvalue"))))
        del found, owned, rules
        stats.contested_links += len(links)
        clusters, refusals = settle(links, held, limits, same, yielding)
        del links, held
        refused.append(pa.table({
            "rid": pa.array([r.rid for r in refusals], pa.int64()), "anchor": pa.array([r.anchor for r in refusals], pa.int64()),
            "rule": pa.array([r.rule for r in refusals], pa.string()),
            "reason": pa.array([reason_of(r.ctype) for r in refusals], pa.string())}))
        del refusals
        greedy.append(pa.table({"rid": pa.array(list(clusters), pa.int64()),
                                "cid": pa.array(list(clusters.values()), pa.int64())}))
        del clusters
    engine.load_table("tl_work_greedy", temp=True, data=pa.concat_tables(greedy) if greedy else pa.table({
        "rid": pa.array([], pa.int64()), "cid": pa.array([], pa.int64())}))
    del greedy
    engine.load_table("tl_work_refused_w", temp=True, data=pa.concat_tables(refused) if refused else pa.table({
        "rid": pa.array([], pa.int64()), "anchor": pa.array([], pa.int64()), "rule": pa.array([], pa.string()),
        "reason": pa.array([], pa.string())}))
    del refused
    engine.run([
        work_table(
            CLUSTERS,
            f"AS SELECT node AS rid, label AS cid FROM tl_work_lab "
            "WHERE label NOT IN (SELECT label FROM tl_work_group_bad) UNION ALL SELECT rid, cid FROM tl_work_greedy"),
        f"INSERT INTO {PENDING} SELECT rid, anchor, rule, reason FROM tl_work_refused_w",  # weighed by weigh_refused
        f"INSERT INTO {drops} SELECT rid, rule, reason, 1 FROM tl_work_refused_w",
        *[f"DROP TABLE IF EXISTS {t}" for t in WORK],
    ])
    return stats

