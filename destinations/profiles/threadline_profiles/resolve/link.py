"""Stage 4, resolve: which records are one person.

1. keys      — per rule, the key each record offers (a normalized identifier, or several
               traits joined); one SELECT per rule, UNION ALL-ed.
2. groups    — records sharing a rule's key. A key held by more than
               `max_records_per_value` records is blocked (placeholders, shared inboxes).
3. edges     — each record to its group's first record: an equi-join, linear in the group
               size (a star, not all pairs; the components are the same).
4. clusters  — every rule's links at once, settled by evidence where a per-profile limit
               (at most one customer id per system, say) or a never-merge pair refuses some:
               the weakest links of the component give way (`evidence.py`).
"""

from __future__ import annotations

import pyarrow as pa

from threadline_profiles.config import (
    CUSTOMER_ID,
    DEFAULT_TRAIT_RULES,
    IDENTIFIER_TYPES,
    AgreementRule,
    IdentityRule,
    Resolution,
)
from threadline_profiles.engines.base import Engine, lit, quote, work_table
from threadline_profiles.resolve import agreement, conflicts, hints
from threadline_profiles.resolve import evidence as by_evidence
from threadline_profiles.resolve.model import Reuse

MANUAL_RULE = by_evidence.MANUAL_RULE
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
        if f == hints.USERNAME:  # made from handles and addresses
            return hints.username_sql()
        if f == agreement.HANDLE_YEAR:  # the year-like digits of a handle or an address
            return hints.handle_year_sql()
        if f == agreement.REAL_YEAR:  # the record's own birth year (before hints.py reads one from a handle)
            date = "MAX(CASE WHEN field = 'birth_date' THEN SUBSTR(match_key, 1, 4) END)"
            return f"SUBSTR(COALESCE(MAX(CASE WHEN field = 'birth_year' THEN match_key END), {date}), 3, 2)"
        own = f"MAX(CASE WHEN field = {lit(f)} THEN match_key END)"
        if f == "birth_year" and "birth_date" in fields:  # a full date gives its year too
            return f"COALESCE({own}, MAX(CASE WHEN field = 'birth_date' THEN SUBSTR(match_key, 1, 4) END))"
        return own

    cols = ", ".join(f"{value(f)} AS {quote(f)}" for f in fields)
    cols += "".join(f", SPLIT_PART({value(f)}, '@', 1) AS {quote(b)}" for b, f in agreement.BLOCK_ONLY.items() if f in fields)
    cols += f", {value(agreement.REAL_YEAR)} AS {agreement.REAL_YEAR}" if agreement.HANDLE_YEAR in fields else ""
    sources = (list(hints.USERNAME_FROM) if {hints.USERNAME, agreement.HANDLE_YEAR} & set(fields) else []) + (
        ["birth_date", "birth_year"] if agreement.HANDLE_YEAR in fields else [])
    names = ", ".join(lit(f) for f in dict.fromkeys(fields + sources))
    return work_table(
        "tl_work_person",
        f"AS SELECT rid, {cols} FROM tl_work_nv WHERE status = 'ok' AND field IN ({names}) GROUP BY rid")


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
    return work_table("tl_work_keys", f"AS SELECT rid, rule, key FROM ({' UNION ALL '.join(parts)}) AS k")


def groups_sql() -> str:
    """tl_work_groups: every key held by two or more records, with its first record."""
    return (
        work_table("tl_work_groups", "AS SELECT rule, key, COUNT(*) AS records, MIN(rid) AS anchor "
                                     "FROM tl_work_keys GROUP BY rule, key HAVING COUNT(*) > 1")
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
    return work_table("tl_work_edges", f"AS {' UNION ALL '.join(parts)}")


AGREEMENT_RULE = agreement.RULE


def agreement_fields(rule: AgreementRule | None, mapped: set[str]) -> list[str]:
    """The agreement rule's fields that are mapped (traits and identifiers); empty when too
    few are, or neither a first name nor a birth date (which tell family members apart)."""
    if rule is None:
        return []
    fields = [f for f in rule.fields if f in mapped or (f == hints.USERNAME and "social_handle" in mapped)
              or (f == agreement.HANDLE_YEAR and mapped & set(hints.USERNAME_FROM) and mapped & {"birth_date", "birth_year"})]
    return fields if len(fields) >= rule.min_fields and conflicts.applies(fields) else []


def person_fields(rules: list[IdentityRule], fuzzy: list[str], traits: set[str]) -> list[str]:
    """The fields tl_work_person needs: those of the trait rules, of the agreement rule, and
    the ones the conflict guard compares."""
    wanted = {f for r in rules if not is_identifier_rule(r) for f in r.match} | set(fuzzy)
    return sorted(wanted | ({conflicts.FIRST, conflicts.BIRTH, conflicts.YEAR, conflicts.MIDDLE, *conflicts.HOME} & traits))


def is_guarded(rule: IdentityRule) -> bool:
    """Rules whose links can join two people: identifiers people share (a family inbox, a
    home phone, a number passed on, a shared device or card, a copied national id) and trait
    combinations (twins share a last name, a birth date and an address). A system's customer
    id names one account and is not guarded."""
    return not (is_identifier_rule(rule) and CUSTOMER_ID.match(rule.match[0]))


def _record_drops(engine: Engine, select: str) -> None:
    """Insert dropped pairs (a, b, rule, conflict) into tl_work_drops and tl_work_refused with
    their reason."""
    reason = " ".join(f"WHEN {c} THEN {lit(r)}" for c, r in conflicts.REASONS.items())
    refused = f"SELECT d.a AS rid, d.b AS anchor, d.rule, CASE d.conflict {reason} END AS reason FROM ({select}) AS d"
    engine.run([f"INSERT INTO {DROPS} SELECT rid, rule, reason, 1 FROM ({refused}) AS r", by_evidence.refuse_sql(refused)])


def guard_and_agree(engine: Engine, settings: Resolution, rules: list[IdentityRule], fuzzy: list[str],
                    fields: list[str], use: Reuse | None = None) -> tuple[dict[tuple[str, str], int], agreement.AgreementModel | None]:
    """After tl_work_edges: fit the agreement rule (when it runs), drop the links between
    records that look like two people (`conflicts.py`, when `settings.conflict_guard`), then
    add the agreement rule's edges. Dropped links go to tl_work_drops; returns what the
    agreement rule skipped, per (rule, reason), and the model (which weighs the links of a
    conflict: evidence.py).

    Whether the store holds family members is read from the data: from the pairs the agreement
    rule would link on their other fields alone, and from each guarded rule's own pairs. Where
    it does, both kinds of conflict are dropped from every guarded rule; where the data says it
    does not (a register of people), only the conflicts a rule's own pairs show too often are;
    where it cannot tell, shared identifiers still drop the records that disagree.

    With `use.stored` (a model kept from an earlier build, model.py) nothing is estimated: its
    weights score the pairs and its judgement of households and conflicts is taken as it is;
    `use.model` is set to the model the pairs were scored with."""
    skipped: dict[tuple[str, str], int] = {}
    use = use or Reuse()
    model = (agreement.fit(engine, settings.agreement, fuzzy, use.stored, use.sizes)
             if fuzzy and settings.agreement is not None else None)
    use.model = model
    judged = model is not None and model.judged  # a stored model: households and vetoes come with it
    guard = settings.conflict_guard and conflicts.applies(fields)
    # the typo rates the guard judges by are fixed, never the model's: see conflicts.py
    m_first, m_birth = conflicts.TYPO_DIFFERENT[conflicts.FIRST], conflicts.TYPO_DIFFERENT[conflicts.BIRTH]
    households: bool | None = model.households if judged else None
    if model is not None:
        names = [f.name for f in model.fields]
        engine.run(["DROP TABLE IF EXISTS tl_work_sconf",
                    work_table(
                        "tl_work_sconf",
                        f"AS SELECT s.*, {conflicts.from_levels_sql(names)} FROM tl_work_score AS s")])
        if guard and not judged:  # judged among the pairs the other fields alone would link
            alone = (f"(SELECT {lit(AGREEMENT_RULE)} AS rule, hf, hd, hh, conflict, 1 AS n FROM tl_work_sconf "
                     f"WHERE odds - person_odds >= {model.threshold!r})")
            evidence = conflicts.read_evidence(engine.rows(conflicts.evidence_sql(alone, "rule")))
            households = bool(evidence.get(AGREEMENT_RULE, conflicts.Evidence()).vetoed(m_first, m_birth))
    guarded = [r for r in rules if is_guarded(r)]
    if guard and guarded:
        agreement.require_comparisons(engine)
        engine.run([f"DROP TABLE IF EXISTS {t}" for t in conflicts.WORK])
        engine.run(conflicts.rule_pairs_sql([r.name for r in guarded], settings.max_records_per_value, fields))
        vetoed = {r.name: model.vetoed.get(r.name, []) for r in guarded} if judged else {}
        evidence = {} if judged else conflicts.read_evidence(engine.rows(conflicts.evidence_sql("tl_work_gpairs", "rule")))
        own = {r.name: evidence[r.name].vetoed(m_first, m_birth) if r.name in evidence else [] for r in guarded}
        if any(own[r.name] for r in guarded if not is_identifier_rule(r)):
            households = True
        for r in guarded if not judged else []:
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
            model.vetoed = vetoed
    if model is not None:
        model.households, model.judged = households, True
        keep = f"s.conflict IN (0, {conflicts.SAME_MIDDLE})" if guard and households else "TRUE"
        if guard and households:
            # One home is one fact: a family shares its street, postal code and city whole, so
            # they count once (by the strongest) for pairs whose first names and birth dates do
            # not on balance say one person: exactly the pairs a family member could be.
            engine.run("UPDATE tl_work_sconf SET odds = odds - place_extra WHERE person_odds <= 0")
        if keep != "TRUE":
            _record_drops(engine, f"SELECT s.a, s.b, {lit(AGREEMENT_RULE)} AS rule, s.conflict FROM tl_work_sconf AS s "
                                  f"WHERE s.odds >= {model.threshold!r} AND NOT ({keep})")
        engine.run(agreement.edges_sql(model, "tl_work_sconf", keep))
        engine.run("DROP TABLE IF EXISTS tl_work_sconf")
        agreement.drop_work(engine)
        if model.from_priors:  # a note for the report, not a drop: no links counted
            skipped[(AGREEMENT_RULE, f"model: m of {', '.join(model.from_priors)} from the stated priors (fewer than "
                                     f"{agreement.MIN_MATCHING_PAIRS} matching pairs in the blocks that leave each out)")] = 0
        for block, (_, pairs) in model.skipped.items():
            skipped[(AGREEMENT_RULE, f"blocks on {block} over {settings.agreement.max_block} records skipped")] = pairs
        for block, (_, pairs) in model.refined.items():
            fine = "+".join(agreement.refined(block.split("+"), fuzzy))
            skipped[(AGREEMENT_RULE, f"blocks on {block} over {settings.agreement.refine_over} records "
                                     f"compared within {fine} only")] = pairs
    return skipped, model


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
    return work_table(
        "tl_work_constraints",
        f"AS SELECT DISTINCT rid, ctype, cvalue FROM ({' UNION ALL '.join(parts)}) AS c")


# --------------------------------------------------------------------------- clustering (evidence.py)

CLUSTERS = by_evidence.CLUSTERS  # (rid, cid) for every record in a cluster of two or more
DROPS = "tl_work_drops"  # (rid, rule, reason, links): dropped links, by the record of their first cluster


def drops_table_sql() -> list[str]:
    """tl_work_drops, filled by the guards and the clustering (rid NULL: counts that belong
    to no one record, such as the agreement rule's skipped blocks), and tl_work_refused, the
    refused links themselves (evidence.py)."""
    return [f"DROP TABLE IF EXISTS {DROPS}", work_table(
        DROPS,
        f"(rid BIGINT, rule VARCHAR, reason VARCHAR, links BIGINT)"),
            *by_evidence.refused_table_sql()]


def final_clusters_sql() -> str:
    """tl_work_comp: every record with its component (its smallest rid)."""
    return (
        work_table("tl_work_comp", "AS SELECT r.rid, COALESCE(c.cid, r.rid) AS comp FROM tl_work_rec AS r "
                                   f"LEFT JOIN {CLUSTERS} AS c ON c.rid = r.rid")
    )


def links_sql() -> str:
    """tl_work_links: the edges that hold inside a final component (the why of each link)."""
    return (
        work_table(
            "tl_work_links",
            "AS SELECT e.rid, e.anchor, e.rule, e.key FROM tl_work_edges AS e "
            "JOIN tl_work_comp AS x ON x.rid = e.rid JOIN tl_work_comp AS y ON y.rid = e.anchor WHERE x.comp = y.comp")
    )


def settings_rules(settings: Resolution, id_types: set[str], traits: set[str]) -> list[IdentityRule]:
    """The rules in force: the configured ones, or the defaults for what is mapped."""
    return list(settings.rules) if settings.rules is not None else default_rules(id_types, traits)
