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

import pytest
from synthetic_customers import customers
from threadline.contracts import FatalError
from threadline_profiles import ProfileStore, api
from threadline_profiles.engines.spark_engine import (
    SparkSettings,
    SparkUnavailableError,
    SparkUnreachableError,
    require_java,
    spark_session,
    to_spark,
)
from threadline_profiles.testing import Lander

ROOT = Path(__file__).resolve().parents[3]
LOOKUPS = [("--email", "sofia.jones102@example.com"), ("--email", "test@test.com"), ("--phone", "+15123535655")]
# A build on Spark runs ~450 statements, each a Spark job: minutes on a busy 2-core machine.
ON_SPARK = pytest.mark.timeout(1500)
# (the catalog in memory: the tests' stores live as long as the session, and Derby's metastore
# would add a fraction of a second to every statement)
LIGHT = {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2", "spark.ui.enabled": "false",
         "spark.sql.catalogImplementation": "in-memory"}


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
    for key, table in data.tables.items():
        source, stream = key.split(".")
        lander.land(source, stream, table)
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
        "traits": sorted((r["profile_id"], tuple(r["reachable_channels"] or ())) for r in e.rows("SELECT * FROM tl_traits"))
        if e.table_exists("tl_traits") else [],
        "audience_members": sorted((r["audience"], r["profile_id"], r["from_seq"], r["to_seq"])
                                   for r in e.rows("SELECT * FROM tl_audience_members"))
        if e.table_exists("tl_audience_members") else [],
    }


# ------------------------------------------------------------------ without a JVM


def test_stage_sql_is_carried_to_the_spark_dialect_and_temporary_tables_become_plain_ones():
    assert to_spark("CREATE TEMP TABLE t AS SELECT CAST(x AS VARCHAR) AS x FROM s") == \
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
