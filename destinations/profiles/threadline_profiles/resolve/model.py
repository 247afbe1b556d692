"""The stored agreement model: fitted once, kept in the store, reused by the builds after.

The agreement rule's weights (agreement.py) are estimated from every record, and so is the
guard's judgement of the store (link.guard_and_agree: does it hold households, which
conflict classes does each rule drop) and the name-hint dictionary (hints.py: the names the
store's records use). A build that estimated them again from only the records it resolves
would judge differently from a full build; one that estimated them from all records would
cost a full build. So a full build fits them and keeps them here, and later builds reuse
them as they are, full or incremental: given the same model, an incremental build resolves
the records around what changed exactly as a full build resolves them all.

Tables (written in the build's publish transaction; a killed build keeps the last model):

- tl_model        one row per fitted version: when and on how many records and candidate
                  pairs it was fitted, its prior and threshold, whether a comparison fell
                  back to the stated priors, the guard's judgement (`guard`, JSON) and the
                  settings fingerprint it was fitted under (incremental.fingerprint).
- tl_model_levels per version, comparison and level: m, u and the match weight log2(m/u)
                  (the one the report charts), and per comparison the log2 u of exact
                  agreement on a value seen once (`lu_once`) and whether m is the prior.
- tl_model_tf     the current version's value frequencies (log2 u of exact agreement on
                  each value seen twice or more; rarer values take `lu_once`).
- tl_model_names  the current version's name-hint dictionary (first names with their
                  matching keys, last names).

A model is fitted again (a full build) when there is none, when the settings it was fitted
under changed, when a person was forgotten (tl_model_tf and tl_model_names hold values read
from their records: an erasure must not leave them in the model), when the store has grown
to more than REFIT_GROWTH times the records it was fitted on, or when asked (`threadline
profiles build --refit`, `api.build(refit=True)`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from threadline_profiles.engines.base import Engine, lit
from threadline_profiles.resolve.agreement import FITTED_TF, AgreementModel, FieldModel, levels_of

TABLES = ("tl_model", "tl_model_levels", "tl_model_tf", "tl_model_names")
CATALOG = [
    "CREATE TABLE IF NOT EXISTS tl_model (version BIGINT, fitted_at TIMESTAMP, build_id VARCHAR, fingerprint VARCHAR, "
    "records BIGINT, pairs_used BIGINT, matching_pairs DOUBLE, prior DOUBLE, threshold DOUBLE, fell_back BOOLEAN, "
    "fell_back_on VARCHAR, guard VARCHAR)",
    "CREATE TABLE IF NOT EXISTS tl_model_levels (version BIGINT, comparison VARCHAR, position INTEGER, level INTEGER, "
    "m DOUBLE, u DOUBLE, weight DOUBLE, lu_once DOUBLE, from_prior BOOLEAN)",
    "CREATE TABLE IF NOT EXISTS tl_model_tf (comparison VARCHAR, value VARCHAR, lu DOUBLE)",
    "CREATE TABLE IF NOT EXISTS tl_model_names (kind VARCHAR, word VARCHAR, key VARCHAR)",
]
# The store has grown past this many times the records the model was fitted on: fit again
# (a model fitted on the first thousand records, or on too few pairs to leave the priors,
# says little about a million).
REFIT_GROWTH = 2.0
NAMES_WORK = "tl_work_mnames"  # the dictionary a fitting build's hints used (hints.fill keeps it)
LEVEL_NAMES = {3: "exact", 2: "close", 1: "near", 0: "different"}


@dataclass
class Reuse:
    """How a build uses the agreement model, passed through link.guard_and_agree."""

    stored: AgreementModel | None = None  # score with this model, fit nothing
    sizes: str | None = None  # store-wide block sizes (blk, k, n): an incremental build's scope is part of the store
    model: AgreementModel | None = None  # set by the build: the model it scored with (fitted or stored)


def ensure(engine: Engine) -> None:
    engine.run(CATALOG)


def load(engine: Engine, fields: list[str]) -> tuple[AgreementModel | None, str]:
    """The current model and the fingerprint it was fitted under; (None, "") when there is
    none, or when it compares other fields than `fields` (then it cannot be reused)."""
    if not engine.table_exists("tl_model"):
        return None, ""
    rows = engine.rows("SELECT * FROM tl_model ORDER BY version DESC LIMIT 1")
    if not rows:
        return None, ""
    head = rows[0]
    levels = engine.rows(f"SELECT * FROM tl_model_levels WHERE version = {int(head['version'])} ORDER BY position, level")
    by_field: dict[str, list[dict]] = {}
    for r in levels:
        by_field.setdefault(r["comparison"], []).append(r)
    if list(by_field) != fields:
        return None, ""
    models = []
    for name, rs in by_field.items():
        if tuple(sorted((int(r["level"]) for r in rs), reverse=True)) != levels_of(name):
            return None, ""  # levels changed with the code: the model cannot be read as it was meant
        models.append(FieldModel(name, levels_of(name), {int(r["level"]): float(r["m"]) for r in rs},
                                 {int(r["level"]): float(r["u"]) for r in rs},
                                 None if rs[0]["lu_once"] is None else float(rs[0]["lu_once"]), bool(rs[0]["from_prior"])))
    guard = json.loads(head["guard"] or "{}")
    fell_back = json.loads(head["fell_back_on"] or "{}")
    model = AgreementModel(models, float(head["prior"]), float(head["threshold"]), float(head["matching_pairs"] or 0),
                           from_priors={f: fell_back[f] for f in fields if f in fell_back}, judged=True,
                           households=guard.get("households"), vetoed=guard.get("vetoed", {}),
                           version=int(head["version"]), records=int(head["records"] or 0))
    model.candidates = int(head["pairs_used"] or 0)
    return model, head["fingerprint"] or ""


def refit_reason(engine: Engine, stored: AgreementModel | None, fitted_under: str, fingerprint: str,
                 asked: bool, forgotten: bool = False) -> str | None:
    """Why this build fits the model again (None: it reuses the stored one). `forgotten`: a
    person was forgotten since the last build — the model's value frequencies and names
    were read from their records too, so it is fitted again without them."""
    if asked:
        return "the agreement model is fitted again: asked for"
    if stored is None:
        return "no agreement model is stored yet"
    if fitted_under != fingerprint:
        return "the agreement model was fitted under other settings"
    if forgotten:
        return "a person was forgotten: the agreement model is fitted again without their records"
    records = int(engine.scalar("SELECT COUNT(*) FROM tl_state_records") or 0) if engine.table_exists("tl_state_records") else 0
    if records > REFIT_GROWTH * max(stored.records, 1):
        return f"the store has grown to {records} records since the agreement model was fitted on {stored.records}"
    return None


def _num(value: float | None) -> str:
    return "CAST(NULL AS DOUBLE)" if value is None else repr(float(value))


def publish_sql(model: AgreementModel, build_id: str, at: str, fingerprint: str, names: bool) -> list[str]:
    """Statements (inside the publish transaction) that keep a model this build fitted as the
    next version: its row, its levels, its value frequencies and (`names`) the dictionary."""
    version = f"(SELECT COALESCE(MAX(version), 0) + 1 FROM tl_model)"
    guard = json.dumps({"households": model.households, "vetoed": model.vetoed}, sort_keys=True)
    out = [
        f"INSERT INTO tl_model (version, fitted_at, build_id, fingerprint, records, pairs_used, matching_pairs, prior, "
        f"threshold, fell_back, fell_back_on, guard) SELECT {version}, CAST('{at}' AS TIMESTAMP), {lit(build_id)}, "
        f"{lit(fingerprint)}, {int(model.records)}, {int(model.candidates)}, {_num(model.expected_pairs)}, "
        f"{_num(model.prior)}, {_num(model.threshold)}, {'TRUE' if model.from_priors else 'FALSE'}, "
        f"{lit(json.dumps({k: round(v, 2) for k, v in model.from_priors.items()}, sort_keys=True))}, {lit(guard)}",
    ]
    rows = []
    for position, f in enumerate(model.fields):
        weights = f.weights()
        for level in f.levels:
            rows.append(f"({lit(f.name)}, {position}, {level}, {_num(f.m[level])}, {_num(f.u[level])}, "
                        f"{_num(weights[level])}, {_num(f.lu_once)}, {'TRUE' if f.from_prior else 'FALSE'})")
    if rows:
        out.append("INSERT INTO tl_model_levels (version, comparison, position, level, m, u, weight, lu_once, from_prior) "
                   f"SELECT (SELECT MAX(version) FROM tl_model), v.* FROM (VALUES {', '.join(rows)}) "
                   "AS v(comparison, position, level, m, u, weight, lu_once, from_prior)")
    out += ["DELETE FROM tl_model_tf", f"INSERT INTO tl_model_tf SELECT comparison, value, lu FROM {FITTED_TF}"]
    out.append("DELETE FROM tl_model_names")
    if names:
        out.append(f"INSERT INTO tl_model_names SELECT kind, word, key FROM {NAMES_WORK}")
    return out


def current(engine: Engine) -> dict | None:
    """The current version's row and levels, for the report (None: no model stored)."""
    if not engine.table_exists("tl_model"):
        return None
    rows = engine.rows("SELECT * FROM tl_model ORDER BY version DESC LIMIT 1")
    if not rows:
        return None
    head = dict(rows[0])
    head["levels"] = engine.rows(f"SELECT comparison, level, m, u, weight, from_prior FROM tl_model_levels "
                                 f"WHERE version = {int(head['version'])} ORDER BY position, level DESC")
    head["from_priors"] = json.loads(head.get("fell_back_on") or "{}")
    return head
