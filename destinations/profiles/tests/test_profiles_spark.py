"""The Spark engine: the same stages, transpiled by sqlglot, give the same profiles as DuckDB.

One Spark session serves the whole test session (a JVM start costs seconds, and the machine is
shared): `local[2]`, two shuffle partitions, no UI. The tests without a marker run in CI; the
full parity suite is marked `spark` (`pytest -m spark`).
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from synthetic_customers import customers
from threadline.contracts import FatalError
from threadline_profiles import ProfileStore, api
from threadline_profiles.activation.push import push_all
from threadline_profiles.api import forget
from threadline_profiles.engines.base import for_dialect, work_table
from threadline_profiles.engines.spark_engine import (
    SparkSettings,
    SparkUnavailableError,
    SparkUnreachableError,
    require_java,
    spark_session,
    to_spark,
)
from threadline_profiles.testing import Lander, copy_store

ROOT = Path(__file__).resolve().parents[3]
LOOKUPS = [("--email", "sofia.jones102@example.com"), ("--email", "test@test.com"), ("--phone", "+15123535655")]
# A build on Spark runs ~450 statements, each a Spark job: minutes on a busy 2-core machine.
ON_SPARK = pytest.mark.timeout(1500)
# (the catalog in memory: the tests' stores live as long as the session, and Derby's metastore
# would add a fraction of a second to every statement; a heap that fits examples/mission's reads,
# the same on every machine)
LIGHT = {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2", "spark.ui.enabled": "false",
         "spark.sql.catalogImplementation": "in-memory", "spark.driver.memory": "2g"}


@pytest.fixture(scope="session")
def spark_warehouse(tmp_path_factory) -> Path:
    try:
        import pyspark  # noqa: F401

        require_java()
    except (ImportError, SparkUnavailableError) as exc:
        pytest.skip(f"the Spark engine needs pyspark and a Java runtime: {exc}")
    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    session = spark_session(SparkSettings(master="local[2]", warehouse=str(warehouse), conf=LIGHT))
    yield warehouse
    session.stop()


@pytest.fixture
def spark_config(spark_warehouse, tmp_path) -> dict:
    """A store in a database of its own, on the session's Spark."""
    return {"engine": "spark", "report_dir": str(tmp_path / "reports"),
            "spark": {"master": "local[2]", "warehouse": str(spark_warehouse), "conf": LIGHT,
                      "database": f"tl_spark_{uuid.uuid4().hex[:8]}"}}


def land_all(config: dict, people: int) -> dict:
    data = customers(people, seed=11)
    config = {**config, "resolve_on_finish": False, "mappings": data.mappings,
              "resolution": {"never_merge": [["crm.contacts:C1", "shop.customers:S2"]],
                             "always_merge": [["crm.contacts:C3", "loyalty.members:L4"]]},
              "audiences": {"born": {"where": "birth_date is not null"}}}
    lander = Lander(config)
    lander.land_tables(data.tables)
    with lander.store() as store:
        api.build(store, report=False)
        return published(store)


def published(store: ProfileStore) -> dict:
    e = store.engine
    return {
        "ids": {r["record_key"]: r["profile_id"] for r in e.rows("SELECT record_key, profile_id FROM tl_members")},
        "golden": sorted((r["profile_id"], r["field"], r["value"], r["record_key"], r["rule"])
                         for r in e.rows("SELECT * FROM tl_golden")),
        "links": sorted((r["record_key"], r["linked_record_key"], r["rule"]) for r in e.rows("SELECT * FROM tl_links")),
        "dq": sorted((r["source"], r["field"], r["status"], r["reason"], int(r["n"])) for r in e.rows("SELECT * FROM tl_dq")),
        "refused": sorted((r["record_key"], r["linked_record_key"], r["rule"], round(float(r["weight"]), 6), r["reason"])
                          for r in e.rows("SELECT * FROM tl_links_refused")),
        # (a set: Spark lists a profile's channels in another order than DuckDB)
        "traits": sorted((r["profile_id"], tuple(sorted(r["reachable_channels"] or ()))) for r in e.rows("SELECT * FROM tl_traits"))
        if e.table_exists("tl_traits") else [],
        "audience_members": sorted((r["audience"], r["profile_id"], r["from_seq"], r["to_seq"])
                                   for r in e.rows("SELECT * FROM tl_audience_members"))
        if e.table_exists("tl_audience_members") else [],
    }


# ------------------------------------------------------------------ without a JVM


def test_stage_sql_is_carried_to_the_spark_dialect_and_work_tables_are_plain_ones():
    assert to_spark(for_dialect(work_table("t", "AS SELECT CAST(x AS VARCHAR) AS x FROM s"), "spark")) == \
        "CREATE TABLE t AS SELECT CAST(x AS STRING) AS x FROM s"


def test_no_java_is_a_clear_error_naming_what_to_install(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SparkUnavailableError) as err:
        require_java()
    assert "openjdk-17-jre-headless" in str(err.value.hint)


def test_a_too_old_pyspark_is_a_clear_error(monkeypatch):
    pyspark = pytest.importorskip("pyspark")
    from threadline_profiles.engines.spark_engine import require_spark

    monkeypatch.setattr(pyspark, "__version__", "3.3.2")
    with pytest.raises(SparkUnavailableError, match="needs pyspark 3.5 or newer; this is 3.3.2"):
        require_spark()


def test_an_unreachable_cluster_at_check_names_the_url_and_the_reason():
    pytest.importorskip("pyspark")
    from threadline_profiles.destination import ProfilesDestination
    from threadline_profiles.config import ProfilesConfig

    config = ProfilesConfig.model_validate({"engine": "spark", "spark": {"master": "spark://127.0.0.1:1"}})
    with pytest.raises(SparkUnreachableError) as err:
        ProfilesDestination().check(config)
    assert "cannot reach Spark at spark://127.0.0.1:1" in str(err.value)
    assert "refused" in str(err.value).lower()


# Record keys whose order a cut of their keys could get wrong: primary keys shorter and longer
# than the cut, sharing their first characters, non-ASCII, and streams whose names sort one way
# and whose `source.stream:` prefixes another
TRICKY_KEYS = [("crm", "contacts", pk) for pk in ("C1", "C10", "C100", "C1000", "C10000", "C9", "C99", "C1001", "", "Z",
                                                "é1", "ée", "C1000a", "C1000A", "c1")] + \
              [("crm", "contacts2", pk) for pk in ("A", "C1000", "C100")] + [("crm", "c", pk) for pk in ("x", "C10000")] + \
              [("shop", "customers", f"S{i}") for i in range(40)]


def landed_table(keys: list[tuple[str, str, str]]) -> Any:
    import pyarrow as pa

    return pa.table({"source": [k[0] for k in keys], "stream": [k[1] for k in keys], "pk": [k[2] for k in keys],
                     "record_key": [f"{k[0]}.{k[1]}:{k[2]}" for k in keys]})


def numbered(engine: Any, statement: str, table: str, key: str, number: str) -> dict:
    engine.run(["DROP TABLE IF EXISTS " + table, statement])
    return {r[key]: r[number] for r in engine.rows(f"SELECT {key}, {number} FROM {table}")}


def test_numbering_records_in_groups_of_keys_gives_the_numbers_of_one_window(tmp_path):
    """Spark's tl_work_records (groups of record keys, each numbered in its own task) numbers
    every record as one window over all record keys does: checked on DuckDB, which runs both."""
    from threadline_profiles.engines import DuckDBEngine
    from threadline_profiles.resolve import values

    engine = DuckDBEngine(tmp_path / "p.duckdb", encryption="off")
    try:
        engine.load_table("landed", landed_table(TRICKY_KEYS))
        sql = values.records_sql("SELECT * FROM landed")
        assert for_dialect(sql, "spark") != for_dialect(sql, "duckdb")
        one_window = numbered(engine, for_dialect(sql, "duckdb"), "tl_work_records", "record_key", "rid")
        grouped = numbered(engine, for_dialect(sql, "spark"), "tl_work_records", "record_key", "rid")
        assert grouped == one_window
        assert sorted(one_window, key=one_window.get) == sorted(one_window)  # numbered in record-key order
        engine.load_table("scope", landed_table(TRICKY_KEYS[::3]).select(["record_key"]))
        scoped = values.records_sql("SELECT * FROM landed", "scope")
        assert numbered(engine, for_dialect(scoped, "spark"), "tl_work_records", "record_key", "rid") == \
            numbered(engine, for_dialect(scoped, "duckdb"), "tl_work_records", "record_key", "rid")
    finally:
        engine.close()


@pytest.mark.spark
@ON_SPARK
def test_spark_numbers_records_as_duckdb_does(tmp_path, spark_config):
    from threadline_profiles.engines import DuckDBEngine
    from threadline_profiles.resolve import values

    sql = values.records_sql("SELECT * FROM landed")
    duck = DuckDBEngine(tmp_path / "p.duckdb", encryption="off")
    try:
        duck.load_table("landed", landed_table(TRICKY_KEYS))
        expected = numbered(duck, sql, "tl_work_records", "record_key", "rid")
    finally:
        duck.close()
    with ProfileStore.open(spark_config) as store:
        store.engine.load_table("landed", landed_table(TRICKY_KEYS))
        assert numbered(store.engine, sql, "tl_work_records", "record_key", "rid") == expected


# ------------------------------------------------------------------ on Spark (CI runs these)


@ON_SPARK
def test_spark_and_duckdb_give_the_same_profiles_on_a_small_population(tmp_path, spark_config):
    on_duckdb = land_all({"path": str(tmp_path / "p.duckdb"), "encryption": "off"}, people=150)
    on_spark = land_all(spark_config, people=150)
    assert len(set(on_duckdb["ids"].values())) < len(on_duckdb["ids"])  # records did merge
    assert on_duckdb["traits"] and on_duckdb["audience_members"]
    for part in ("ids", "golden", "links", "dq", "refused", "traits", "audience_members"):
        assert on_spark[part] == on_duckdb[part], part


@pytest.mark.spark  # a second JVM-backed build costs CI minutes; the parity test above is CI's one
@ON_SPARK
def test_a_build_that_fails_before_its_publish_leaves_the_previous_profiles(spark_config):
    config = {**spark_config, "resolve_on_finish": False,
              "mappings": {"crm.contacts": {"identifiers": {"email": "email"}}}}
    lander = Lander(config)
    lander.land("crm", "contacts", [{"id": 1, "email": "a@mail.com"}, {"id": 2, "email": "a@mail.com"}])
    with lander.store() as store:
        api.build(store, report=False)
        before = published(store)
    lander.land("crm", "contacts", [{"id": 3, "email": "a@mail.com"}], run_id="run-2")

    def die(stage: str) -> None:
        if stage == "golden":
            raise FatalError("the build was killed")

    with lander.store() as store:
        with pytest.raises(FatalError, match="killed"):
            api.build(store, report=False, on_stage=die)
        assert published(store) == before  # the views still point at the last build's tables
        api.build(store, report=False)
        assert len(published(store)["ids"]) == 3


# ------------------------------------------------------------------ the full parity suite


@pytest.mark.spark
@ON_SPARK
def test_spark_and_duckdb_give_the_same_profiles_on_a_larger_population(tmp_path, spark_config):
    on_duckdb = land_all({"path": str(tmp_path / "p.duckdb"), "encryption": "off"}, people=400)
    on_spark = land_all(spark_config, people=400)
    for part in ("ids", "golden", "links", "dq", "refused", "traits", "audience_members"):
        assert on_spark[part] == on_duckdb[part], part


def _cli(*args: str) -> str:
    """A threadline command in this process (a subprocess would start a second JVM)."""
    from click.testing import CliRunner
    from threadline.cli import _add_package_commands, cli

    _add_package_commands()
    out = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert out.exit_code == 0, out.output[-3000:]
    return out.output


def _example(job: str, folder: Path) -> dict:
    from threadline_profiles.cli.profiles import store_config

    _cli("sync", job)
    with ProfileStore.open(store_config(str(folder / job), None, None, None, None)) as store:
        found = published(store)
    groups: dict[str, set[str]] = {}
    for key, pid in found["ids"].items():
        groups.setdefault(pid, set()).add(key)
    found["profiles"] = sorted(tuple(sorted(g)) for g in groups.values())
    found["lookups"] = []
    for option, value in LOOKUPS:  # each profile found: its members and golden record (not its build's times)
        out = json.loads(_cli("profiles", "get", "--job", job, option, value, "--region", "US", "--json"))
        found["lookups"].append(sorted(
            (p["profile_id"], sorted(m["record_key"] for m in p["members"]),
             sorted((k, g["value"], g["record_key"]) for k, g in p["golden"].items())) for p in out))
    return found


@pytest.mark.spark
@ON_SPARK
def test_the_customers_example_gives_the_same_profiles_on_spark_and_duckdb(tmp_path, spark_warehouse, monkeypatch):
    folder = tmp_path / "customers"
    shutil.copytree(ROOT / "examples" / "customers", folder,
                    ignore=shutil.ignore_patterns(".threadline", "*.duckdb*", "*_reports", "spark-warehouse"))
    monkeypatch.chdir(folder)
    monkeypatch.setenv("THREADLINE_SPARK_DATABASE", f"tl_customers_{uuid.uuid4().hex[:8]}")
    duck = _example("job.yaml", folder)
    spark = _example("job_spark.yaml", folder)
    assert len(duck["profiles"]) < len(duck["ids"])  # records did merge
    for part in ("ids", "profiles", "golden", "links", "dq", "refused", "traits", "audience_members", "lookups"):
        assert spark[part] == duck[part], part
    assert [len(found) for found in duck["lookups"]] == [1, 3, 1]  # one person; the placeholder's three holders apart


# ------------------------------------------------------------------ incremental builds


def _built_twice(config: dict, before_second: Any = None) -> dict:
    """Land a population and build; land changes (CRM records whose phone is now another
    record's, shop customers new under emails the CRM holds) and build again: what the second
    build published, and how it ran. `before_second` runs between the landing and the build."""
    data = customers(300, seed=3)
    config = {**config, "resolve_on_finish": False, "mappings": data.mappings, "resolution": {"agreement": None},
              "incremental_up_to": 1.0}
    lander = Lander(config)
    lander.land_tables(data.tables, batch_rows=200)
    with lander.store() as store:
        api.build(store, report=False)
    crm = data.tables["crm.contacts"].to_pylist()
    moved = [{**r, "phone": crm[(i * 37 + 50) % len(crm)]["phone"]} for i, r in enumerate(crm[:15])]
    joined = [{"id": f"N{i}", "email": r["email"], "first_name": r["first_name"], "last_name": r["last_name"]}
              for i, r in enumerate(crm[100:110])]
    lander.land("crm", "contacts", moved, run_id="changes", schema=data.tables["crm.contacts"].schema)
    lander.land("shop", "customers", joined, run_id="changes", schema=data.tables["shop.customers"].schema)
    if before_second is not None:
        before_second()
    with lander.store() as store:
        result = api.build(store, report=False)
        return {"how": (result.mode, result.resolved, result.records), **published(store)}


@pytest.mark.spark
@ON_SPARK
def test_an_incremental_build_on_spark_gives_what_a_full_build_gives(tmp_path, spark_config):
    """Spark's second build resolves only the scope around the changes, and publishes what a
    full build from the same state publishes (DuckDB's, on a copy of its store taken before its
    own second build; that DuckDB's incremental builds equal its full ones is
    test_profiles_incremental's)."""
    path = tmp_path / "p.duckdb"
    duck_config = {"path": str(path), "encryption": "off", "report_dir": str(tmp_path / "duck_reports")}
    duck = _built_twice(duck_config, before_second=lambda: copy_store(path, tmp_path / "full.duckdb"))
    with ProfileStore.open({**duck_config, "path": str(tmp_path / "full.duckdb"), "resolve_on_finish": False,
                            "mappings": customers(300, seed=3).mappings, "resolution": {"agreement": None}}) as store:
        api.build(store, report=False, full=True)
        full = published(store)
    spark = _built_twice(spark_config)
    mode, resolved, records = spark["how"]
    assert mode == "incremental" and 0 < resolved < records, spark["how"]
    assert duck["how"] == spark["how"]
    assert len(set(full["ids"].values())) < len(full["ids"])  # records did merge
    differ = [part for part in full if spark[part] != full[part]]
    for part in differ:
        assert spark[part] == full[part], f"{part} (all that differ: {', '.join(differ)})"


# ------------------------------------------------------------------ consent, pushes and forget


def _contacts(people: int, kelly_again: bool = False) -> dict[str, list[dict]]:
    """A CRM granting or denying ad use, a website's consent log that later overrides some of
    it (a tie with the CRM for others, which denies), and an ESP's newsletter purpose."""
    crm = [{"id": i, "email": f"Person.{i}@Example.com", "first_name": f"Ann{i}", "last_name": "Lee",
            "ads": "denied" if i % 9 == 0 else "granted", "ads_at": "2026-10-01T00:00:00Z"} for i in range(people)]
    web = [{"id": f"w{i}", "email": f"person.{i}@example.com", "choice": "rejected" if i % 2 else "accepted",
            "recorded_at": "2026-10-01T00:00:00Z" if i % 3 == 0 else ("2026-11-01T00:00:00Z" if i % 3 == 1 else
                                                                       "2026-09-01T00:00:00Z")}
           for i in range(0, people, 4)]
    esp = [{"id": f"e{i}", "email": f"person.{i}@example.com", "newsletter": i % 2 == 0, "changed_at": f"2026-10-{i % 28 + 1:02d}"}
           for i in range(0, people, 5)]
    if kelly_again:  # the CRM still has person 1 and sends her again; the ESP too, under a new id
        esp.append({"id": "e-again", "email": "person.1@example.com", "newsletter": True, "changed_at": "2026-11-02"})
    return {"crm.contacts": crm, "web.consent_log": web, "esp.members": esp}


def _activation_flow(config: dict, sandbox) -> dict:
    """Land, build, push to Meta's sandbox, forget one person, push again, land her again and
    build: what each step left in the store and on the platform."""
    # each stream's own update time (not when it landed, which differs between two runs) picks golden values
    config = {**config, "resolve_on_finish": False, "mappings": {
        "crm.contacts": {"identifiers": {"email": "email"}, "traits": {"first_name": "first_name", "last_name": "last_name"},
                         "updated_at": "ads_at", "consent": {"channel": "advertising", "column": "ads", "timestamp": "ads_at"}},
        "web.consent_log": {"identifiers": {"email": "email"}, "updated_at": "recorded_at",
                            "consent": {"channel": "advertising", "column": "choice", "granted": ["accepted"],
                                        "denied": ["rejected"], "timestamp": "recorded_at"}},
        "esp.members": {"identifiers": {"email": "email"}, "updated_at": "changed_at",
                        "consent": {"channel": "email", "purpose": "newsletter", "column": "newsletter",
                                    "timestamp": "changed_at"}}},
        "audiences": {"everyone": {"where": "email is not null"}},
        "activations": {"everyone_to_meta": {"audience": "everyone", "connector": "meta_audiences", "config": {
            "base_url": sandbox.base_url, "access_token": sandbox.ACCESS_TOKEN, "audience_id": sandbox.AUDIENCE_ID}}}}
    lander = Lander(config)
    for key, rows in _contacts(130).items():
        lander.land(*key.split("."), rows)
    found: dict = {}

    def pushed(store: ProfileStore) -> list:
        outcomes = push_all(store)
        ledger = sorted(tuple(str(v) for v in r.values()) for r in store.engine.rows("SELECT * FROM tl_ledger_everyone_to_meta"))
        return [[(o.outcome, o.members, o.excluded_no_consent, o.adds, o.removes, o.accepted) for o in outcomes],
                ledger, sorted(sandbox.audience_hashes(sandbox.AUDIENCE_ID))]

    with lander.store() as store:
        api.build(store, report=False)
        found["consent"] = sorted(tuple(str(v) for v in r.values()) for r in store.engine.rows(
            'SELECT profile_id, channel, purpose, granted, "at", source, stream, record_key FROM tl_consent'))
        found.update({f"built {k}": v for k, v in published(store).items()})
        found["first_push"] = pushed(store)
        result = forget(store, email="person.1@example.com")
        found["forget"] = (result.profiles, result.records, result.tombstones, result.pending_removals)
        found.update({f"after_forget {k}": v for k, v in published(store).items()})
        found["tombstones"] = sorted(r["hash"] for r in store.engine.rows("SELECT hash FROM tl_tombstones"))
        found["second_push"] = pushed(store)
    for key, rows in _contacts(130, kelly_again=True).items():
        lander.land(*key.split("."), rows, run_id="run-2")
    with lander.store() as store:
        api.build(store, report=False)
        found.update({f"rebuilt {k}": v for k, v in published(store).items()})
        found["rebuilt_raw"] = sorted(r["id"] for r in store.engine.rows("SELECT id FROM raw_esp__members"))
        found["her"] = api.get(store, email="person.1@example.com")
    return found


@pytest.mark.spark
@ON_SPARK
def test_consent_pushes_and_forget_give_the_same_results_on_spark_and_duckdb(tmp_path, spark_config, monkeypatch):
    from threadline_meta_audiences.sandbox import MetaSandbox

    monkeypatch.setenv("THREADLINE_STORE_SECRET", "0f" * 32)  # one secret: the same tombstone hashes
    with MetaSandbox() as box:
        duck = _activation_flow({"path": str(tmp_path / "p.duckdb"), "encryption": "off",
                                 "report_dir": str(tmp_path / "duck_reports")}, box)
    with MetaSandbox() as box:
        spark = _activation_flow(spark_config, box)
    # the flow shows what it is meant to: consent both ways, a push, a removal, a person kept out
    assert {c[3] for c in duck["consent"]} == {"True", "False"}
    assert duck["first_push"][0][0][0] == "pushed" and duck["second_push"][0][0][3:5] == (0, 1)
    assert duck["forget"][3] == {"everyone_to_meta": 1} and duck["her"] is None
    assert "esp.members:e-again" not in duck["rebuilt ids"]
    differ = [part for part in duck if spark[part] != duck[part]]
    for part in differ:
        assert spark[part] == duck[part], f"{part} (all that differ: {', '.join(differ)})"


# ------------------------------------------------------------------ examples/mission

MISSION_MONTH = "2026-09-20"  # the replay's first month (replay.py MONTHS): one sync, every stage and push
RUN_COLUMNS = {"push_id", "run_id", "audit_id", "build_id", "seconds"}  # differ between any two runs


def rows_of(store: ProfileStore, table: str) -> list[tuple]:
    """A table's rows, comparable between engines: without the times of the run and its ids,
    nor sealed values (encrypted under a fresh nonce each time)."""
    from datetime import date, datetime

    from threadline_profiles.activation.seal import PREFIX

    if not store.engine.table_exists(table):
        return []
    return sorted(tuple(str(v) for k, v in r.items() if k not in RUN_COLUMNS and not isinstance(v, (datetime, date))
                        and not (isinstance(v, str) and v.startswith(PREFIX)))
                  for r in store.engine.rows(f"SELECT * FROM {table}"))


def _mission(folder: Path, spark: dict | None, monkeypatch) -> dict:
    """One sync of examples/mission against fresh sandboxes; what its store then holds."""
    import runpy

    from threadline.plugins import registry
    from threadline_profiles.cli.profiles import store_config

    shutil.copytree(ROOT / "examples" / "mission", folder,
                    ignore=shutil.ignore_patterns(".threadline", "*.duckdb*", "*_reports", "mail"))
    job = folder / "job.yaml"
    # One stream at a time, in the job's order: a record without an update time is as recent as
    # its landing, so with streams landing side by side which of two equally ranked values (an
    # order's email and a campaign result's) becomes golden, and who is then pushed, changes
    # from one run to the next on any engine
    text = job.read_text()
    assert "\nconcurrency: 4\n" in text
    job.write_text(text.replace("\nconcurrency: 4\n", "\nconcurrency: 1\n"))
    if spark is not None:  # the same job with its store on Spark
        text = job.read_text()
        assert "      path: mission.duckdb\n" in text
        job.write_text(text.replace("      path: mission.duckdb\n", "      engine: spark\n      report_dir: mission_reports\n"
                                    f"      spark: {json.dumps(spark)}\n"))
    replay = runpy.run_path(str(folder / "replay.py"))  # not as __main__: nothing runs
    boxes = [registry().sandboxes[name](seed=0, port=0).start() for name in replay["SANDBOXES"]]
    try:
        for name, box in zip(replay["SANDBOXES"], boxes):
            for variable, path in replay["URL_VARIABLES"][name].items():
                monkeypatch.setenv(variable, box.base_url + path)
        monkeypatch.setenv("MISSION_AS_OF", MISSION_MONTH)
        monkeypatch.chdir(folder)
        _cli("sync", str(job))
    finally:
        for box in boxes:
            box.stop()
    with ProfileStore.open(store_config(str(job), None, None, None, None)) as store:
        found = published(store)
        # (which of a profile's records with the winning value is credited with it hangs, for a
        # stream without an update time such as klaviyo.events, on which of its pages landed in
        # which commit: it differs between two runs on one engine)
        found["golden"] = sorted({(p, field, value, rule) for p, field, value, _, rule in found["golden"]})
        for table in ("tl_consent", "tl_decisions", "tl_campaign_arms", "tl_suppressed"):
            found[table] = rows_of(store, table)
        found["pushes"] = sorted((r["activation"], r["outcome"], r["adds"], r["removes"], r["accepted"]) for r in
                                 store.engine.rows("SELECT * FROM tl_pushes"))
        for name in store.config.activations:
            found[f"ledger {name}"] = rows_of(store, f"tl_ledger_{name}")
    return found


@pytest.mark.spark
@pytest.mark.timeout(3000)  # one sync of every stage and seven pushes: tens of minutes on a busy 2-core machine
def test_the_mission_gives_the_same_profiles_decisions_and_push_ledgers_on_spark_and_duckdb(
        tmp_path, spark_warehouse, monkeypatch):
    monkeypatch.setenv("THREADLINE_STORE_SECRET", "0f" * 32)
    duck = _mission(tmp_path / "duck", None, monkeypatch)
    spark = _mission(tmp_path / "spark", {"master": "local[2]", "warehouse": str(spark_warehouse), "conf": LIGHT,
                                          "database": f"tl_mission_{uuid.uuid4().hex[:8]}"}, monkeypatch)
    assert duck["tl_decisions"] and duck["ledger loyal_to_mailchimp"] and duck["tl_consent"]
    assert any(outcome == "pushed" for _, outcome, *_ in duck["pushes"])
    differ = [part for part in duck if spark[part] != duck[part]]
    for part in differ:
        assert spark[part] == duck[part], f"{part} (all that differ: {', '.join(differ)})"
