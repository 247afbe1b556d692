"""Stage 4, resolve: which records are one person.

1. keys      — per rule, the key each record offers (a normalized identifier, or several
               traits joined); one SELECT per rule, UNION ALL-ed.
2. groups    — records sharing a rule's key. A key held by more than
               `max_records_per_value` records is blocked (placeholders, shared inboxes).
3. edges     — each record to its group's first record: an equi-join, linear in the group
               size (a star, not all pairs; the components are the same).
4. clusters  — rules are applied in priority order. A rule's links are accepted unless the
               merged profile would exceed a per-profile limit (at most one customer id per
               system, say) or join a never-merge pair; those links are dropped and counted.
               Most conflicts are between two clusters and are filtered in SQL; the few groups
               that exceed a limit only through several links are settled greedily, link by
               link in a fixed order, so that one bad link does not cost the group its others.
               Components come from `components.connected_components`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from threadline_profiles.config import (
    CUSTOMER_ID,
    DEFAULT_TRAIT_RULES,
    IDENTIFIER_TYPES,
    AgreementRule,
    IdentityRule,
    Resolution,
)
from threadline_profiles.engines.base import Engine, lit, quote
from threadline_profiles.resolve import agreement, conflicts
from threadline_profiles.resolve.components import connected_components

MANUAL_RULE = "always_merge"
_ID_ORDER = ("national_id", "loyalty_card", "email", "phone", "device_id", "social_handle", "email_canonical")


def is_identifier_rule(rule: IdentityRule) -> bool:
    m = rule.match[0]
    return len(rule.match) == 1 and (m in IDENTIFIER_TYPES or m == "email_canonical" or bool(CUSTOMER_ID.match(m)))


def default_rules(id_types: set[str], traits: set[str]) -> list[IdentityRule]:
    """The built-in rules for what the mappings provide: customer ids, loyalty cards, emails,
    phones, devices and handles each on their own, then the canonical email, then the
    composite trait rules whose every field is mapped somewhere."""
    ids = sorted(t for t in id_types if t.startswith("customer_id:"))
    ids += [t for t in _ID_ORDER if t in id_types or (t == "email_canonical" and "email" in id_types)]
    rules = [IdentityRule(name=t, match=[t]) for t in ids]
    rules += [r for r in DEFAULT_TRAIT_RULES if set(r.match) <= traits]
    return rules


# --------------------------------------------------------------------------- keys


def identifier_keys_sql(rule: IdentityRule) -> str:
    id_type = rule.match[0]
    source_field, column = ("email", "match_key") if id_type == "email_canonical" else (
        id_type, "value" if id_type == "email" else "match_key")
    return (  # DISTINCT: a stream may map two columns to one identifier type
        f"SELECT DISTINCT rid, {lit(rule.name)} AS rule, {column} AS key FROM tl_work_nv "
        f"WHERE field = {lit(source_field)} AND status = 'ok'"
    )


def person_sql(fields: list[str]) -> str:
    """tl_work_person: one row per record with the matching key of each single-valued trait."""
    def value(f: str) -> str:
        own = f"MAX(CASE WHEN field = {lit(f)} THEN match_key END)"
        if f == "birth_year" and "birth_date" in fields:  # a full date gives its year too
            return f"COALESCE({own}, MAX(CASE WHEN field = 'birth_date' THEN SUBSTR(match_key, 1, 4) END))"
        return own

    cols = ", ".join(f"{value(f)} AS {quote(f)}" for f in fields)
    cols += "".join(f", SPLIT_PART({value(f)}, '@', 1) AS {quote(b)}" for b, f in agreement.BLOCK_ONLY.items() if f in fields)
    names = ", ".join(lit(f) for f in fields)
    return f"CREATE TEMP TABLE tl_work_person AS SELECT rid, {cols} FROM tl_work_nv WHERE status = 'ok' AND field IN ({names}) GROUP BY rid"


def trait_keys_sql(rule: IdentityRule) -> str:
    key = " || '|' || ".join(quote(f) for f in rule.match)
    present = " AND ".join(f"{quote(f)} IS NOT NULL" for f in rule.match)
    return f"SELECT rid, {lit(rule.name)} AS rule, {key} AS key FROM tl_work_person WHERE {present}"


def keys_sql(rules: list[IdentityRule]) -> str:
    """tl_work_keys: (rid, rule, key), one row per record and key it offers to a rule. Each part
    is distinct on its own (parts are different rules; a trait key is one per record): one
    DISTINCT over the whole union cannot spill within DuckDB's memory limit at 10M records."""
    parts = [identifier_keys_sql(r) if is_identifier_rule(r) else trait_keys_sql(r) for r in rules]
    if not parts:
        parts = ["SELECT CAST(NULL AS BIGINT) AS rid, CAST(NULL AS VARCHAR) AS rule, CAST(NULL AS VARCHAR) AS key WHERE 1 = 0"]
    return f"CREATE TEMP TABLE tl_work_keys AS SELECT rid, rule, key FROM ({' UNION ALL '.join(parts)}) AS k"


def groups_sql() -> str:
    """tl_work_groups: every key held by two or more records, with its first record."""
    return (
        "CREATE TEMP TABLE tl_work_groups AS SELECT rule, key, COUNT(*) AS records, MIN(rid) AS anchor "
        "FROM tl_work_keys GROUP BY rule, key HAVING COUNT(*) > 1"
    )


def edges_sql(max_records: int, always_merge: list[tuple[str, str]]) -> str:
    """tl_work_edges: (rid, anchor, rule, key). Rule edges join each record to its key's
    anchor (an equi-join on rule and key); manual always-merge pairs are edges too."""
    parts = [
        "SELECT k.rid, g.anchor, k.rule, k.key FROM tl_work_keys AS k JOIN tl_work_groups AS g "
        f"ON g.rule = k.rule AND g.key = k.key WHERE g.records <= {max_records} AND k.rid <> g.anchor"
    ]
    for a, b in always_merge:
        parts.append(
            f"SELECT x.rid, y.rid AS anchor, {lit(MANUAL_RULE)} AS rule, {lit(a + ' = ' + b)} AS key "
            f"FROM tl_work_rec AS x JOIN tl_work_rec AS y ON x.record_key = {lit(a)} AND y.record_key = {lit(b)}"
        )
    return f"CREATE TEMP TABLE tl_work_edges AS {' UNION ALL '.join(parts)}"


AGREEMENT_RULE = agreement.RULE


def agreement_fields(rule: AgreementRule | None, mapped: set[str]) -> list[str]:
    """The agreement rule's fields that are mapped (traits and identifiers); empty when too
    few are, or neither a first name nor a birth date (which tell family members apart)."""
    if rule is None:
        return []
    fields = [f for f in rule.fields if f in mapped]
    return fields if len(fields) >= rule.min_fields and conflicts.applies(fields) else []


def person_fields(rules: list[IdentityRule], fuzzy: list[str], traits: set[str]) -> list[str]:
    """The fields tl_work_person needs: those of the trait rules, of the agreement rule, and
    the ones the conflict guard compares."""
    wanted = {f for r in rules if not is_identifier_rule(r) for f in r.match} | set(fuzzy)
    return sorted(wanted | ({conflicts.FIRST, conflicts.BIRTH, conflicts.MIDDLE, *conflicts.HOME} & traits))


def is_guarded(rule: IdentityRule) -> bool:
    """Rules whose links can join two people: identifiers people share (a family inbox, a
    home phone, a number passed on, a shared device or card, a copied national id) and trait
    combinations (twins share a last name, a birth date and an address). A system's customer
    id names one account and is not guarded."""
    return not (is_identifier_rule(rule) and CUSTOMER_ID.match(rule.match[0]))


def _record_drops(engine: Engine, select: str) -> None:
    """Insert dropped pairs (a, rule, conflict) into tl_work_drops with their reason."""
    reason = " ".join(f"WHEN {c} THEN {lit(r)}" for c, r in conflicts.REASONS.items())
    engine.run(f"INSERT INTO {DROPS} SELECT d.a, d.rule, CASE d.conflict {reason} END, 1 FROM ({select}) AS d")


def guard_and_agree(engine: Engine, settings: Resolution, rules: list[IdentityRule], fuzzy: list[str],
                    fields: list[str]) -> dict[tuple[str, str], int]:
    """After tl_work_edges: fit the agreement rule (when it runs), drop the links between
    records that look like two people (`conflicts.py`, when `settings.conflict_guard`), then
    add the agreement rule's edges. Dropped links go to tl_work_drops; returns what the
    agreement rule skipped, per (rule, reason).

    Whether the store holds family members is read from the data: from the pairs the agreement
    rule would link on their other fields alone, and from each guarded rule's own pairs. Where
    it does, both kinds of conflict are dropped from every guarded rule; where the data says it
    does not (a register of people), only the conflicts a rule's own pairs show too often are;
    where it cannot tell, shared identifiers still drop the records that disagree."""
    skipped: dict[tuple[str, str], int] = {}
    model = agreement.fit(engine, settings.agreement, fuzzy) if fuzzy and settings.agreement is not None else None
    guard = settings.conflict_guard and conflicts.applies(fields)
    # the typo rates the guard judges by are fixed, never the model's: see conflicts.py
    m_first, m_birth = conflicts.TYPO_DIFFERENT[conflicts.FIRST], conflicts.TYPO_DIFFERENT[conflicts.BIRTH]
    households: bool | None = None
    if model is not None:
        names = [f.name for f in model.fields]
        engine.run(["DROP TABLE IF EXISTS tl_work_sconf",
                    f"CREATE TEMP TABLE tl_work_sconf AS SELECT s.*, {conflicts.from_levels_sql(names)} FROM tl_work_score AS s"])
        if guard:  # judged among the pairs the other fields alone would link
            alone = (f"(SELECT {lit(AGREEMENT_RULE)} AS rule, hf, hd, hh, conflict, 1 AS n FROM tl_work_sconf "
                     f"WHERE odds - person_odds >= {model.threshold!r})")
            evidence = conflicts.read_evidence(engine.rows(conflicts.evidence_sql(alone, "rule")))
            households = bool(evidence.get(AGREEMENT_RULE, conflicts.Evidence()).vetoed(m_first, m_birth))
    guarded = [r for r in rules if is_guarded(r)]
    if guard and guarded:
        engine.require_levenshtein()
        engine.run([f"DROP TABLE IF EXISTS {t}" for t in conflicts.WORK])
        engine.run(conflicts.rule_pairs_sql([r.name for r in guarded], settings.max_records_per_value, fields))
        evidence = conflicts.read_evidence(engine.rows(conflicts.evidence_sql("tl_work_gpairs", "rule")))
        own = {r.name: evidence[r.name].vetoed(m_first, m_birth) if r.name in evidence else [] for r in guarded}
        if any(own[r.name] for r in guarded if not is_identifier_rule(r)):
            households = True
        vetoed = {}
        for r in guarded:
            classes = set(own[r.name])
            if households:
                classes |= {1, 2, conflicts.UNTOLD}
            elif households is None and is_identifier_rule(r):
                classes.add(1)
            if is_identifier_rule(r) and r.match[0] in conflicts.SHARED_CONTACTS:  # evidence, not a key: conflicts.py
                classes.add(conflicts.BOTH_DIFFER)
            vetoed[r.name] = sorted(conflicts.with_both_differ(classes))
        engine.run(conflicts.relink_sql(vetoed))
        _record_drops(engine, conflicts.dropped_sql(vetoed))
        engine.run([f"DROP TABLE IF EXISTS {t}" for t in conflicts.WORK])
    if model is not None:
        keep = f"s.conflict IN (0, {conflicts.SAME_MIDDLE})" if guard and households else "TRUE"
        if guard and households:
            # One home is one fact: a family shares its street, postal code and city whole, so
            # they count once (by the strongest) for pairs whose first names and birth dates do
            # not on balance say one person: exactly the pairs a family member could be.
            engine.run("UPDATE tl_work_sconf SET odds = odds - place_extra WHERE person_odds <= 0")
        if keep != "TRUE":
            _record_drops(engine, f"SELECT s.a, {lit(AGREEMENT_RULE)} AS rule, s.conflict FROM tl_work_sconf AS s "
                                  f"WHERE s.odds >= {model.threshold!r} AND NOT ({keep})")
        engine.run(agreement.edges_sql(model, "tl_work_sconf", keep))
        engine.run("DROP TABLE IF EXISTS tl_work_sconf")
        agreement.drop_work(engine)
        if model.from_priors:  # a note for the report, not a drop: no links counted
            skipped[(AGREEMENT_RULE, f"model: m of {', '.join(model.from_priors)} from the stated priors (fewer than "
                                     f"{agreement.MIN_MATCHING_PAIRS} matching pairs in the blocks that leave each out)")] = 0
        for block, (_, pairs) in model.skipped.items():
            skipped[(AGREEMENT_RULE, f"blocks on {block} over {settings.agreement.max_block} records skipped")] = pairs
    return skipped


# --------------------------------------------------------------------------- constraints


def limits_table(limits: dict[str, int], id_types: set[str], never_merge: list[tuple[str, str]]) -> pa.Table:
    """(ctype, max_values): the per-profile limits for the identifier types present, with
    `customer_id:*` expanded to each system, and one constraint per never-merge pair."""
    rows: dict[str, int] = {}
    for pattern, most in limits.items():
        if pattern.endswith(":*"):
            prefix = pattern[:-1]
            rows.update({t: most for t in id_types if t.startswith(prefix) and t not in limits})
        elif pattern in id_types:
            rows[pattern] = most
    for i in range(len(never_merge)):
        rows[f"never_merge:{i}"] = 1
    return pa.table({"ctype": pa.array(list(rows), pa.string()), "max_values": pa.array(list(rows.values()), pa.int64())})


def constraints_sql(limited_types: list[str], never_merge: list[tuple[str, str]]) -> str:
    """tl_work_constraints: (rid, ctype, cvalue): what each record brings that a profile may
    hold only so many of."""
    parts = [
        f"SELECT rid, field AS ctype, match_key AS cvalue FROM tl_work_nv WHERE status = 'ok' "
        f"AND field IN ({', '.join(lit(t) for t in limited_types)})"
    ] if limited_types else []
    for i, (a, b) in enumerate(never_merge):
        for side, ref in (("a", a), ("b", b)):
            parts.append(f"SELECT rid, {lit(f'never_merge:{i}')} AS ctype, {lit(side)} AS cvalue FROM tl_work_rec WHERE record_key = {lit(ref)}")
    if not parts:
        parts = ["SELECT CAST(NULL AS BIGINT) AS rid, CAST(NULL AS VARCHAR) AS ctype, CAST(NULL AS VARCHAR) AS cvalue WHERE 1 = 0"]
    return f"CREATE TEMP TABLE tl_work_constraints AS SELECT DISTINCT rid, ctype, cvalue FROM ({' UNION ALL '.join(parts)}) AS c"


# --------------------------------------------------------------------------- clustering steps

CLUSTERS = "tl_work_cl"  # (rid, cid) for every record in a cluster of two or more


def rule_links_sql(rules: list[str]) -> str:
    """tl_work_e: distinct cluster pairs (a < b) the given rules would join."""
    names = ", ".join(lit(r) for r in rules)
    return (
        "CREATE TEMP TABLE tl_work_e AS SELECT DISTINCT LEAST(ca, cb) AS a, GREATEST(ca, cb) AS b FROM ("
        "SELECT COALESCE(c1.cid, e.rid) AS ca, COALESCE(c2.cid, e.anchor) AS cb FROM tl_work_edges AS e "
        f"LEFT JOIN {CLUSTERS} AS c1 ON c1.rid = e.rid LEFT JOIN {CLUSTERS} AS c2 ON c2.rid = e.anchor "
        f"WHERE e.rule IN ({names})) AS p WHERE ca <> cb"
    )


def cluster_constraints_sql() -> str:
    """tl_work_cc: the constraint values each cluster touched by this rule holds."""
    return (
        "CREATE TEMP TABLE tl_work_cc AS SELECT DISTINCT COALESCE(c.cid, k.rid) AS cid, k.ctype, k.cvalue "
        f"FROM tl_work_constraints AS k LEFT JOIN {CLUSTERS} AS c ON c.rid = k.rid "
        "WHERE COALESCE(c.cid, k.rid) IN (SELECT a FROM tl_work_e UNION SELECT b FROM tl_work_e)"
    )


def pair_violations_sql() -> str:
    """tl_work_pair_bad: links whose two clusters together exceed a limit (with the type)."""
    return (
        "CREATE TEMP TABLE tl_work_pair_bad AS SELECT u.a, u.b, MIN(u.ctype) AS ctype FROM ("
        "SELECT e.a, e.b, x.ctype, x.cvalue FROM tl_work_e AS e JOIN tl_work_cc AS x ON x.cid = e.a "
        "UNION SELECT e.a, e.b, y.ctype, y.cvalue FROM tl_work_e AS e JOIN tl_work_cc AS y ON y.cid = e.b"
        ") AS u JOIN tl_work_limits AS l ON l.ctype = u.ctype GROUP BY u.a, u.b, u.ctype, l.max_values "
        "HAVING COUNT(*) > l.max_values"
    )


def pair_ok_sql() -> str:
    return (
        "CREATE TEMP TABLE tl_work_ok AS SELECT e.a, e.b FROM tl_work_e AS e "
        "LEFT JOIN tl_work_pair_bad AS p ON p.a = e.a AND p.b = e.b WHERE p.a IS NULL"
    )


def group_violations_sql(labels: str) -> str:
    """tl_work_group_bad: merged groups that exceed a limit although every link alone did not
    (A-X and X-B fine, A-X-B two customer ids)."""
    return (
        "CREATE TEMP TABLE tl_work_group_bad AS SELECT DISTINCT g.label, g.ctype FROM ("
        f"SELECT DISTINCT l.label, c.ctype, c.cvalue FROM {labels} AS l JOIN tl_work_cc AS c ON c.cid = l.node"
        ") AS g JOIN tl_work_limits AS m ON m.ctype = g.ctype GROUP BY g.label, g.ctype, m.max_values "
        "HAVING COUNT(*) > m.max_values"
    )


# What a link's two records say about being one person, for settling the links of a group
# that exceeds a limit: per field both records have, exact +2, close +1, near 0, different -2.
EVIDENCE_FIELDS = ("first_name", "middle_name", "last_name", "birth_date")
_EVIDENCE_POINTS = {agreement.EXACT: 2, agreement.CLOSE: 1, agreement.NEAR: 0, agreement.DIFFERENT: -2}


def evidence_sql(fields: list[str], x: str = "px", y: str = "py") -> str:
    """How strongly records x and y (aliases of tl_work_person) look like one person."""
    terms = []
    for f in EVIDENCE_FIELDS:
        if f in fields:
            points = " ".join(f"WHEN {lvl} THEN {n}" for lvl, n in _EVIDENCE_POINTS.items())
            terms.append(f"COALESCE(CASE {agreement.level_sql(f, x, y)} {points} END, 0)")
    return " + ".join(terms) or "0"


def group_conflicts_sql(labels: str, rules: list[str], fields: list[str]) -> tuple[str, str]:
    """The links and constraint values of the merged groups that exceed a limit, for the
    greedy pass (small: only conflicting groups). Links come strongest first: the best
    evidence any record pair behind the link shows (`evidence_sql`), then the cluster ids."""
    bad = f"(SELECT l.node FROM {labels} AS l WHERE l.label IN (SELECT label FROM tl_work_group_bad))"
    names = ", ".join(lit(r) for r in rules)
    person = (f"LEFT JOIN tl_work_person AS px ON px.rid = e.rid LEFT JOIN tl_work_person AS py ON py.rid = e.anchor"
              if fields else "")
    behind = (
        f"SELECT LEAST(ca, cb) AS a, GREATEST(ca, cb) AS b, MAX(evidence) AS evidence FROM ("
        f"SELECT COALESCE(c1.cid, e.rid) AS ca, COALESCE(c2.cid, e.anchor) AS cb, {evidence_sql(fields) if fields else '0'} AS evidence "
        f"FROM tl_work_edges AS e LEFT JOIN {CLUSTERS} AS c1 ON c1.rid = e.rid LEFT JOIN {CLUSTERS} AS c2 ON c2.rid = e.anchor "
        f"{person} WHERE e.rule IN ({names}) AND COALESCE(c1.cid, e.rid) IN {bad}) AS p GROUP BY LEAST(ca, cb), GREATEST(ca, cb)"
    )
    return (
        f"SELECT o.a, o.b FROM tl_work_ok AS o LEFT JOIN ({behind}) AS v ON v.a = o.a AND v.b = o.b "
        f"WHERE o.a IN {bad} ORDER BY COALESCE(v.evidence, 0) DESC, o.a, o.b",
        f"SELECT cid, ctype, cvalue FROM tl_work_cc WHERE cid IN {bad}",
    )


def greedy_accept(links: list[tuple[int, int]], values: list[tuple[int, str, str]], limits: dict[str, int]) -> tuple[list[tuple[int, int]], list[tuple[int, str]]]:
    """Accept links one at a time, in the order given (strongest evidence first), skipping any
    that would push a merged group over a limit: where a limit refuses a link, the weakest
    links of the group give way, whatever order the records arrived in.
    Returns the accepted links and the dropped ones, as (first cluster, constraint type)."""
    parent: dict[int, int] = {}
    held: dict[int, dict[str, set[str]]] = {}
    for cid, ctype, cvalue in values:
        held.setdefault(cid, {}).setdefault(ctype, set()).add(cvalue)

    def root(x: int) -> int:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    accepted: list[tuple[int, int]] = []
    dropped: list[tuple[int, str]] = []
    for a, b in links:
        ra, rb = root(a), root(b)
        if ra == rb:
            accepted.append((a, b))
            continue
        va, vb = held.get(ra, {}), held.get(rb, {})
        over = next((t for t in set(va) | set(vb) if len(va.get(t, set()) | vb.get(t, set())) > limits.get(t, 10**9)), None)
        if over is not None:
            dropped.append((a, over))
            continue
        keep, gone = min(ra, rb), max(ra, rb)
        parent[gone] = keep
        merged = held.setdefault(keep, {})
        for t, vals in held.pop(gone, {}).items():
            merged.setdefault(t, set()).update(vals)
        accepted.append((a, b))
    return accepted, dropped


def group_ok_sql() -> str:
    """tl_work_ok2: the links of groups within limits, plus the greedy pass's accepted ones."""
    return (
        "CREATE TEMP TABLE tl_work_ok2 AS SELECT o.a, o.b FROM tl_work_ok AS o JOIN "
        "tl_work_lab AS l ON l.node = o.a WHERE NOT EXISTS (SELECT 1 FROM tl_work_group_bad AS g WHERE g.label = l.label) "
        "UNION ALL SELECT a, b FROM tl_work_greedy"
    )


def apply_labels_sql(labels: str) -> list[str]:
    """Re-point every clustered record at its merged cluster; add newly clustered records."""
    return [
        f"CREATE TEMP TABLE tl_work_cl_next AS SELECT c.rid, COALESCE(l.label, c.cid) AS cid FROM {CLUSTERS} AS c "
        f"LEFT JOIN {labels} AS l ON l.node = c.cid "
        f"UNION ALL SELECT l.node AS rid, l.label AS cid FROM {labels} AS l "
        f"WHERE NOT EXISTS (SELECT 1 FROM {CLUSTERS} AS c WHERE c.rid = l.node)",
        f"DROP TABLE {CLUSTERS}",
        f"ALTER TABLE tl_work_cl_next RENAME TO {CLUSTERS}",
    ]


DROPS = "tl_work_drops"  # (rid, rule, reason, links): dropped links, by the record of their first cluster


def drops_table_sql() -> list[str]:
    """tl_work_drops, filled by the guards and the clustering (rid NULL: counts that belong
    to no one record, such as the agreement rule's skipped blocks)."""
    return [f"DROP TABLE IF EXISTS {DROPS}", f"CREATE TEMP TABLE {DROPS} (rid BIGINT, rule VARCHAR, reason VARCHAR, links BIGINT)"]


def _reason(ctype: str) -> str:
    return f"CASE WHEN {ctype} LIKE 'never_merge:%' THEN 'never-merge pair' ELSE 'profile limit on ' || {ctype} END"


@dataclass
class ClusterStats:
    rounds: int = 0


def cluster_records(engine: Engine, rules: list[str], constrained: bool, limits: dict[str, int] | None = None,
                    fields: list[str] | None = None) -> ClusterStats:
    """Apply the rules in priority order, building tl_work_cl. With no constraints at all the
    order cannot change the result, so every rule's links are joined in one pass. `fields`
    are tl_work_person's columns, which weigh the links of a group over a limit."""
    stats = ClusterStats()
    limits = limits or {}
    drop = [f"DROP TABLE IF EXISTS {t}" for t in ("tl_work_e", "tl_work_cc", "tl_work_pair_bad", "tl_work_ok",
                                                  "tl_work_ok2", "tl_work_group_bad", "tl_work_lab", "tl_work_lab2",
                                                  "tl_work_greedy")]
    engine.run([f"DROP TABLE IF EXISTS {CLUSTERS}", f"CREATE TEMP TABLE {CLUSTERS} (rid BIGINT, cid BIGINT)"])
    passes = [[r] for r in rules] if constrained else [rules]
    for names in passes:
        engine.run(drop)
        engine.run(rule_links_sql(names))
        if not engine.scalar("SELECT COUNT(*) FROM tl_work_e"):
            continue
        manual = names == [MANUAL_RULE]
        if not constrained or manual:
            stats.rounds += connected_components(engine, "tl_work_e", "tl_work_lab")
            engine.run(apply_labels_sql("tl_work_lab"))
            continue
        engine.run([cluster_constraints_sql(), pair_violations_sql(), pair_ok_sql(),
                    f"INSERT INTO {DROPS} SELECT a, {lit(names[0])}, {_reason('ctype')}, 1 FROM tl_work_pair_bad"])
        if not engine.scalar("SELECT COUNT(*) FROM tl_work_ok"):
            continue
        stats.rounds += connected_components(engine, "tl_work_ok", "tl_work_lab")
        engine.run(group_violations_sql("tl_work_lab"))
        if engine.scalar("SELECT COUNT(*) FROM tl_work_group_bad"):
            if fields:  # the evidence compares names with Levenshtein (fuzzystrmatch on Postgres)
                engine.require_levenshtein()
            links_sql_, values_sql_ = group_conflicts_sql("tl_work_lab", names, fields or [])
            # columns, not row dicts: at 10M records these are millions of rows
            found, owned = engine.query(links_sql_), engine.query(values_sql_)
            links = list(zip(found.column("a").to_pylist(), found.column("b").to_pylist()))
            held = list(zip(*(owned.column(c).to_pylist() for c in ("cid", "ctype", "cvalue"))))
            del found, owned
            accepted, dropped = greedy_accept(links, held, limits)
            engine.load_table("tl_work_greedy_drops", temp=True, data=pa.table({
                "rid": pa.array([a for a, _ in dropped], pa.int64()), "ctype": pa.array([t for _, t in dropped], pa.string())}))
            engine.run([f"INSERT INTO {DROPS} SELECT rid, {lit(names[0])}, {_reason('ctype')}, 1 FROM tl_work_greedy_drops",
                        "DROP TABLE tl_work_greedy_drops"])
            engine.load_table("tl_work_greedy", temp=True, data=pa.table({"a": pa.array([a for a, _ in accepted], pa.int64()),
                                                          "b": pa.array([b for _, b in accepted], pa.int64())}))
            engine.run(group_ok_sql())
            if not engine.scalar("SELECT COUNT(*) FROM tl_work_ok2"):
                continue
            stats.rounds += connected_components(engine, "tl_work_ok2", "tl_work_lab2")
            engine.run(apply_labels_sql("tl_work_lab2"))
        else:
            engine.run(apply_labels_sql("tl_work_lab"))
    engine.run(drop)
    return stats


def final_clusters_sql() -> str:
    """tl_work_comp: every record with its component (its smallest rid)."""
    return (
        "CREATE TEMP TABLE tl_work_comp AS SELECT r.rid, COALESCE(c.cid, r.rid) AS comp FROM tl_work_rec AS r "
        f"LEFT JOIN {CLUSTERS} AS c ON c.rid = r.rid"
    )


def links_sql() -> str:
    """tl_work_links: the edges that hold inside a final component (the why of each link)."""
    return (
        "CREATE TEMP TABLE tl_work_links AS SELECT e.rid, e.anchor, e.rule, e.key FROM tl_work_edges AS e "
        "JOIN tl_work_comp AS x ON x.rid = e.rid JOIN tl_work_comp AS y ON y.rid = e.anchor WHERE x.comp = y.comp"
    )


def settings_rules(settings: Resolution, id_types: set[str], traits: set[str]) -> list[IdentityRule]:
    """The rules in force: the configured ones, or the defaults for what is mapped."""
    return list(settings.rules) if settings.rules is not None else default_rules(id_types, traits)
