"""B3: identity resolution at scale — source records → profiles on this machine.

    python bench/b3_resolution.py                                # 100k and 1M records, DuckDB and Postgres
    python bench/b3_resolution.py --records 10000000 --engine duckdb
    python bench/b3_resolution.py --records 1000000 --changed 0.01   # plus an incremental build after 1% changes
    python bench/b3_resolution.py --records 100000 --engine duckdb --changed 0.01 --repeat 3   # medians of 3 pairs
    python bench/b3_resolution.py --records 300000 --engine duckdb --statement-times 15   # plus the 15 slowest statements
    python bench/b3_resolution.py --records 100000 --engine spark    # Spark local[2], then DuckDB beside it, and the ratio

Data: synthetic_customers.customers(names="census") — people with US first and last names
drawn at their published frequencies (Faker's en_US lists; `--names small`: 40 × 40 names,
uniform, on which every name block grows with the population), ~2.5 records per person over a CRM (customer
id, email, phone, name, birth date), a web shop (customer id, email, name; a quarter of
people have two shop accounts) and a loyalty program (card, national phone, name, US-format
birth date), with households sharing an email, Gmail +tags, odd case, nicknames,
placeholder emails and invalid values.

Each size and engine runs as separate processes, so each peak RSS is that step's own:
generating and landing the data, then the first (full) build. With --changed, a fraction
of the records then changes (half of it new CRM records of existing people, half CRM
records whose email moves to another person), lands, and is built incrementally; a full
build of the same data follows for comparison. Both reuse the agreement model the first
build fitted (resolution/model.py), so the last line, `incremental_vs_full`, compares the
two ways to the same profiles (bar: at most 0.25); with --repeat N (DuckDB) both builds run
N times, alternating, each on its own copy of the changed store, and the ratio is of the
medians (the machine is shared: one pair alone swings with the load). One JSON line per step, each build with
its stage times, and the 1-minute load average (2 shared cores: compare figures measured
at similar load).

On Spark (`--engine spark`, one database in a Derby-backed local catalog under the run's
folder, so that the steps' processes share it) Spark's work is done in its JVM, a child of
the step's process: `cpu_s` adds the JVM's CPU to the process's own, `jvm_peak_rss_mb` is the
JVM's, and each build stage also reports what Spark's status store saw during it (`spark`:
jobs, tasks, task seconds, shuffle bytes read and written, spill to memory and disk, input
and output bytes, the largest shuffle one Spark stage wrote and its statement, the largest
peak execution memory of one task, the JVM heap's and execution memory's peaks), the 40
statements that moved the most shuffle bytes (`spark_statements`, each statement labelled
with its opening as its job description) and `label_rounds`, the connected-components
rounds: the figures the README's capacity plan is derived from. The same size then runs on
DuckDB, and a last line (`spark_vs_duckdb`) gives both builds' wall and CPU seconds per stage
and their ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
MAX_BLOCK = 100  # Splink's blocks are bounded as the agreement rule's are (its default max_block)


def pairwise(truth: dict[str, int], found: dict[str, str]) -> dict[str, float]:
    """Pairwise precision/recall/F1 from cluster sizes (no pair lists: fine at 10M)."""
    def pairs(counter: Counter) -> int:
        return sum(n * (n - 1) // 2 for n in counter.values())

    predicted = pairs(Counter(found.values()))
    true = pairs(Counter(truth.values()))
    both = pairs(Counter((found[k], truth[k]) for k in found if k in truth))
    p = both / predicted if predicted else 1.0
    r = both / true if true else 1.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}


def store_config(args: argparse.Namespace) -> dict[str, Any]:
    from synthetic_customers import customers

    config: dict[str, Any] = {"resolve_on_finish": False, "mappings": customers(100).mappings,
                              "report_dir": str(Path(args.store) / "reports"), "memory_limit": args.memory_limit}
    if args.agreement_off:
        config["resolution"] = {"agreement": None}
    if args.engine == "postgres":
        # (its key file in the run's own folder, not in the folder the bench was started from)
        config.update(engine="postgres", dsn=PG_DSN, schema=Path(args.store).name,
                      key_file=str(Path(args.store) / "store.key"))
    elif args.engine == "spark":
        config.update(engine="spark", spark={
            "master": args.spark_master, "warehouse": str(Path(args.store) / "warehouse"), "database": "b3",
            "conf": {"spark.driver.memory": args.spark_driver_memory, "spark.ui.enabled": "false",
                     "spark.sql.shuffle.partitions": str(args.spark_partitions),
                     # every stage of a build kept in the status store, for the per-stage figures
                     "spark.ui.retainedStages": "1000000", "spark.ui.retainedJobs": "1000000",
                     "spark.ui.retainedTasks": "10000000",
                     # executor memory (heap, execution) sampled each second, not only at heartbeats
                     "spark.executor.metrics.pollingInterval": "1s"}})
    else:
        config["path"] = str(Path(args.store) / "profiles.duckdb")
    return config


def peak_rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def cpu_seconds() -> float:
    """User + system CPU of this process so far, every DuckDB thread included: steadier than
    wall time on a shared machine, and what the Splink comparison is made in. With a Spark
    session in this process, its JVM's CPU too."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime + jvm_cpu_seconds()


def _jvm_pid() -> int | None:
    """The JVM pyspark started for this process, if it did."""
    if "pyspark" not in sys.modules:
        return None
    from pyspark import SparkContext

    proc = getattr(SparkContext._gateway, "proc", None)
    return proc.pid if proc is not None else None


def jvm_cpu_seconds() -> float:
    pid = _jvm_pid()
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def jvm_peak_rss_mb() -> int | None:
    pid = _jvm_pid()
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return None


def stop_jvm() -> None:
    """Stop this process's Spark session and wait for its JVM to end: the next step's process
    opens the same Derby metastore, which one JVM at a time may hold."""
    pid = _jvm_pid()
    if pid is None:
        return
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:
        SparkContext._active_spark_context.stop()
    SparkContext._gateway.shutdown()
    SparkContext._gateway.proc.stdin.close()  # the JVM ends when the stream from its Python closes
    SparkContext._gateway.proc.wait(timeout=60)


SPARK_LITERAL = re.compile(r"'(?:[^'\\]|\\.|'')*'")  # a Spark SQL string literal (backslash escapes)


class SparkStages:
    """What Spark's status store saw during each build stage: an `on_stage` callback that
    sums the Spark stages completed since the last call.

    Per build stage: jobs, tasks, task seconds, shuffle bytes read and written, spill (memory
    and disk), input and output bytes, the largest shuffle one Spark stage wrote, the largest
    peak execution memory of one task (joins', aggregates' and sorts' buffers) and the peak
    JVM heap and execution memory Spark's executor metrics saw. Every statement the engine runs
    is labelled with its opening (its job description, string literals blanked), so the
    figures are also summed per statement (`statements`): which statement writes which
    shuffle, as the capacity plan needs it."""

    def __init__(self, engine: Any) -> None:
        self.context = engine.spark.sparkContext
        self.status = self.context._jsc.sc().statusStore()
        self.seen: set[int] = set()
        self.jobs = 0
        self.per_stage: dict[str, dict[str, Any]] = {}
        self.statements: dict[str, dict[str, Any]] = {}
        self._label_statements(engine)
        self("_before")

    def _label_statements(self, engine: Any) -> None:
        run = engine._sql

        def labelled(sql: str) -> Any:
            self.context.setJobDescription(SPARK_LITERAL.sub("'?'", " ".join(sql.split()))[:200])
            return run(sql)

        engine._sql = labelled

    def _max_task_peak_memory(self, stage: Any) -> float:
        """The largest peak execution memory of one task of `stage` (the stage's own figure
        is the sum over its tasks)."""
        top = self.context._gateway.new_array(self.context._jvm.double, 1)
        top[0] = 1.0
        summary = self.status.taskSummary(stage.stageId(), stage.attemptId(), top)
        return float(summary.get().peakExecutionMemory().apply(0)) if summary.isDefined() else 0.0

    def __call__(self, name: str) -> None:
        mb = 2**20
        totals: dict[str, Any] = {
            "jobs": 0, "tasks": 0, "task_s": 0.0, "shuffle_read_mb": 0.0, "shuffle_write_mb": 0.0,
            "spill_memory_mb": 0.0, "spill_disk_mb": 0.0, "input_mb": 0.0, "output_mb": 0.0, "max_tasks_of_a_stage": 0,
            "largest_shuffle_write_mb": 0.0, "largest_shuffle_statement": None, "max_task_peak_execution_mb": 0.0,
            "peak_jvm_heap_mb": 0.0, "peak_execution_mb": 0.0}
        no_quantiles = self.context._gateway.new_array(self.context._jvm.double, 0)
        stages = self.status.stageList(None, False, False, no_quantiles, None)  # (a Scala Seq)
        for i in range(stages.size()):
            stage = stages.apply(i)
            key = stage.stageId() * 1000 + stage.attemptId()
            if key in self.seen or str(stage.status()) not in ("COMPLETE", "FAILED", "SKIPPED"):
                continue
            self.seen.add(key)
            label = stage.description().get() if stage.description().isDefined() else "(unlabelled)"
            one = {"task_s": stage.executorRunTime() / 1000, "shuffle_read_mb": stage.shuffleReadBytes() / mb,
                   "shuffle_write_mb": stage.shuffleWriteBytes() / mb, "spill_memory_mb": stage.memoryBytesSpilled() / mb,
                   "spill_disk_mb": stage.diskBytesSpilled() / mb, "input_mb": stage.inputBytes() / mb,
                   "output_mb": stage.outputBytes() / mb}
            task_peak = self._max_task_peak_memory(stage) / mb if stage.numCompleteTasks() else 0.0
            totals["tasks"] += stage.numCompleteTasks()
            for k, v in one.items():
                totals[k] += v
            totals["max_tasks_of_a_stage"] = max(totals["max_tasks_of_a_stage"], stage.numTasks())
            if one["shuffle_write_mb"] > totals["largest_shuffle_write_mb"]:
                totals["largest_shuffle_write_mb"], totals["largest_shuffle_statement"] = one["shuffle_write_mb"], label[:100]
            totals["max_task_peak_execution_mb"] = max(totals["max_task_peak_execution_mb"], task_peak)
            peaks = stage.peakExecutorMetrics()
            if peaks.isDefined():
                totals["peak_jvm_heap_mb"] = max(totals["peak_jvm_heap_mb"], peaks.get().getMetricValue("JVMHeapMemory") / mb)
                totals["peak_execution_mb"] = max(totals["peak_execution_mb"],
                                                  peaks.get().getMetricValue("OnHeapExecutionMemory") / mb)
            mine = self.statements.setdefault(label, {"build_stage": name, "spark_stages": 0, "largest_shuffle_write_mb": 0.0,
                                                      "max_task_peak_execution_mb": 0.0, **dict.fromkeys(one, 0.0)})
            mine["spark_stages"] += 1
            for k, v in one.items():
                mine[k] += v
            mine["largest_shuffle_write_mb"] = max(mine["largest_shuffle_write_mb"], one["shuffle_write_mb"])
            mine["max_task_peak_execution_mb"] = max(mine["max_task_peak_execution_mb"], task_peak)
        jobs = self.status.jobsList(None).size()
        totals["jobs"], self.jobs = jobs - self.jobs, jobs
        if name != "_before":
            self.per_stage[name] = {k: round(v, 2) if isinstance(v, float) else v for k, v in totals.items()}

    def heaviest(self, top: int) -> list[dict[str, Any]]:
        """The `top` statements that moved the most shuffle bytes (read and written)."""
        rows = sorted(self.statements.items(), key=lambda kv: -(kv[1]["shuffle_read_mb"] + kv[1]["shuffle_write_mb"]))
        return [{"sql": label, **{k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}}
                for label, figures in rows[:top]]

    def executor_peaks(self) -> dict[str, float]:
        """The peaks Spark's executor metrics saw over the whole session (local mode: the one JVM)."""
        out: dict[str, float] = {}
        executors = self.status.executorList(True)
        for i in range(executors.size()):
            peaks = executors.apply(i).peakMemoryMetrics()
            if peaks.isDefined():
                for metric in ("JVMHeapMemory", "OnHeapExecutionMemory", "OnHeapStorageMemory", "OnHeapUnifiedMemory"):
                    out[metric + "_mb"] = max(out.get(metric + "_mb", 0.0), round(peaks.get().getMetricValue(metric) / 2**20, 1))
        return out


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": "B3", **fields, "load_avg_1m": round(os.getloadavg()[0], 2)}), flush=True)


# --------------------------------------------------------------------------- steps (each its own process)


def land(args: argparse.Namespace) -> None:
    from synthetic_customers import customers
    from threadline_profiles.testing import Lander

    t0 = time.perf_counter()
    data = customers(max(1, int(args.records / 2.5)), seed=args.seed, names=args.names)
    generated = time.perf_counter() - t0
    lander = Lander(store_config(args))
    t0 = time.perf_counter()
    for key, table in data.tables.items():
        source, stream = key.split(".")
        lander.land(source, stream, table, batch_rows=100_000)
    emit(step="land", engine=args.engine, records=data.records, people=data.people, names=data.names, seed=args.seed,
         generate_s=round(generated, 2),
         land_s=round(time.perf_counter() - t0, 2), peak_rss_mb=peak_rss_mb())


def change(args: argparse.Namespace) -> None:
    """Land `--changed` × records changes: new CRM records of existing people and CRM records
    whose email is now another person's."""
    import numpy as np
    import pyarrow as pa
    from synthetic_customers import customers
    from threadline_profiles.testing import Lander

    crm = customers(max(1, int(args.records / 2.5)), seed=args.seed, names=args.names).tables["crm.contacts"]
    n = max(2, int(args.records * args.changed))
    rng = np.random.default_rng(args.seed + 99)
    picked = crm.take(pa.array(rng.choice(crm.num_rows, n, replace=False)))
    moved = picked.slice(0, n // 2)
    moved = moved.set_column(moved.schema.get_field_index("email"), "email",
                             crm.column("email").take(pa.array(rng.choice(crm.num_rows, moved.num_rows))))
    new = picked.slice(n // 2)
    new = new.set_column(0, "id", pa.array([f"N{i}" for i in range(new.num_rows)]))
    t0 = time.perf_counter()
    Lander(store_config(args)).land("crm", "contacts", pa.concat_tables([moved, new]), run_id="changes", batch_rows=100_000)
    emit(step="change", engine=args.engine, changed=moved.num_rows, new=new.num_rows, land_s=round(time.perf_counter() - t0, 2))


def build(args: argparse.Namespace) -> None:
    from synthetic_customers import customers
    from threadline_profiles import ProfileStore, api

    with ProfileStore.open(store_config(args)) as store:
        spark = SparkStages(store.engine) if args.engine == "spark" else None
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        result = api.build(store, full=args.full, report=not args.no_report, on_stage=spark)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        rss = peak_rss_mb()  # before anything else is loaded into this process
        found = {r["record_key"]: r["profile_id"] for r in store.engine.query(
            "SELECT record_key, profile_id FROM tl_members").to_pylist()} if args.score else {}
    fields: dict[str, Any] = {}
    if spark is not None:
        fields.update(jvm_peak_rss_mb=jvm_peak_rss_mb(), spark=spark.per_stage, spark_master=args.spark_master,
                      spark_driver_memory=args.spark_driver_memory, spark_partitions=args.spark_partitions,
                      spark_executor_peaks=spark.executor_peaks(), spark_statements=spark.heaviest(40))
    if args.score:
        fields.update(pairwise(customers(max(1, int(args.records / 2.5)), seed=args.seed, names=args.names).truth, found))
    emit(step="build", engine=args.engine, records=result.records, mode=result.mode, why_full=result.why_full,
         resolved=result.resolved, profiles=result.profiles, seconds=round(seconds, 2), cpu_s=round(cpu, 2), peak_rss_mb=rss,
         stages_s=result.stage_seconds, distinct_values_parsed=result.distinct_values, label_rounds=result.label_rounds,
         rules=result.rules, memory_limit=args.memory_limit, model_version=result.model_version, refit=result.refit,
         **fields)


def splink_step(args: argparse.Namespace) -> None:
    """Plain Splink 5 on DuckDB over the same records: one table of every source's records
    (names lower-cased, birth dates read in both formats, phones as their last ten digits,
    the only cleaning), u by random sampling, m by EM on two blockings, predictions over
    blockings that each include the last name, kept at 0.9, clusters at 0.95. Timed from the table on: what
    `cpu_s` of a threadline build is compared with.

    Splink's connection gets the build's `memory_limit`, and its blocks are bounded as the
    agreement rule's are (`max_block`, 100 records): a blocking rule only pairs records whose
    block under it is that small. Unbounded, on `--names small` (40 first and 40 last names)
    first and last name make blocks of ~640 records at 1M: 329M pairs, which threadline skips,
    and Splink grew past 20 GB."""
    import duckdb
    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator
    from splink.backends.duckdb import DuckDBAPI
    from splink.blocking_rule_library import CustomRule
    from synthetic_customers import customers

    data = customers(max(1, int(args.records / 2.5)), seed=args.seed, names=args.names)
    con = duckdb.connect()
    for key, table in data.tables.items():
        con.register(key.replace(".", "_"), table)
    parts = []
    for key, table in data.tables.items():
        cols = set(table.schema.names)
        opt = lambda c: c if c in cols else "NULL"  # noqa: E731
        parts.append(
            f"SELECT '{key}:' || id AS unique_id, lower(first_name) AS first_name, lower(last_name) AS last_name, "
            f"COALESCE(TRY_STRPTIME({opt('birth_date')}, '%Y-%m-%d'), TRY_STRPTIME({opt('birth_date')}, '%m/%d/%Y'))::DATE::VARCHAR "
            f"AS birth_date, lower({opt('email')}) AS email, right(regexp_replace({opt('phone')}, '[^0-9]', '', 'g'), 10) AS phone "
            f"FROM {key.replace('.', '_')}")
    con.execute(f"CREATE TABLE people_raw AS {' UNION ALL '.join(parts)}")
    con.execute(f"SET memory_limit = '{args.memory_limit}'")
    # (not email or phone alone: placeholder and household emails make blocks of thousands)
    keys = [("email", "last_name"), ("phone", "last_name"), ("first_name", "last_name"), ("last_name", "birth_date"),
            ("first_name", "birth_date")]  # (the last for training only)
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    sizes = ", ".join(f"COUNT(*) OVER (PARTITION BY {', '.join(k)}) AS n{i}" for i, k in enumerate(keys))
    con.execute(f"CREATE TABLE people AS SELECT *, {sizes} FROM people_raw")

    def bounded(i: int) -> CustomRule:
        return CustomRule(" AND ".join(f"l.{c} = r.{c}" for c in keys[i]) + f" AND l.n{i} <= {MAX_BLOCK}", "duckdb")

    db_api = DuckDBAPI(connection=con)
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[cl.NameComparison("first_name"), cl.NameComparison("last_name"),
                     cl.DateOfBirthComparison("birth_date", input_is_string=True), cl.EmailComparison("email"),
                     cl.ExactMatch("phone")],
        blocking_rules_to_generate_predictions=[bounded(i) for i in range(4)])
    linker = Linker(db_api.register("people"), settings, log_level="WARNING")
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    linker.training.estimate_parameters_using_expectation_maximisation(bounded(3))  # the first name, email, phone
    linker.training.estimate_parameters_using_expectation_maximisation(bounded(4))  # the last name, email, phone
    predictions = linker.inference.predict(threshold_match_probability=0.9)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, 0.95)
    found = {r[0]: r[1] for r in con.execute(f"SELECT unique_id, cluster_id FROM {clusters.physical_name}").fetchall()}
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    emit(step="splink", engine="duckdb", records=len(found), seconds=round(seconds, 2), cpu_s=round(cpu, 2),
         peak_rss_mb=peak_rss_mb(), splink=__import__("splink").__version__, **pairwise(data.truth, found))


# --------------------------------------------------------------------------- driver


def step(args: argparse.Namespace, name: str, *extra: str) -> list[dict[str, Any]] | None:
    """Run one step in its own process; its JSON lines (None when it failed)."""
    cmd = [sys.executable, __file__, "--step", name, "--records", str(args.records[0]), "--engine", args.engine,
           "--store", args.store, "--seed", str(args.seed), "--names", args.names, "--memory-limit", args.memory_limit,
           "--spark-master", args.spark_master, "--spark-driver-memory", args.spark_driver_memory,
           "--spark-partitions", str(args.spark_partitions),
           "--changed", str(args.changed), "--repeat", str(args.repeat), *extra] + (["--agreement-off"] if args.agreement_off else [])
    env = dict(os.environ)
    if args.statement_times and name == "build":
        env["THREADLINE_STATEMENT_TIMES"] = str(Path(args.store).parent / f"statements_{name}{'_'.join(extra)}.jsonl")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if args.statement_times and name == "build":
        slowest(Path(env["THREADLINE_STATEMENT_TIMES"]), args.statement_times, args.engine)
    if proc.stdout.strip():
        print(proc.stdout.strip(), flush=True)
    if proc.returncode:
        emit(step=name, engine=args.engine, records=args.records[0], error=proc.stderr.strip().splitlines()[-3:])
        return None
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def slowest(log: Path, top: int, engine: str) -> None:
    """The build's `top` slowest statements, and how many statements it ran in all."""
    if not log.exists():
        return
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    log.unlink()
    # where the process's peak memory rose by 50 MiB or more (in or just before the statement)
    peaks, before = [], 0
    for x in lines:
        if (x.get("peak_rss_mb") or 0) - before >= 50:
            peaks.append({"peak_rss_mb": x["peak_rss_mb"], "rose_mb": x["peak_rss_mb"] - before, "sql": x["sql"][:100]})
        before = max(before, x.get("peak_rss_mb") or 0)
    emit(step="statements", engine=engine, statements=len(lines), total_s=round(sum(x["seconds"] for x in lines), 2),
         under_50ms=sum(1 for x in lines if x["seconds"] < 0.05),
         under_50ms_s=round(sum(x["seconds"] for x in lines if x["seconds"] < 0.05), 2),
         slowest=sorted(lines, key=lambda x: -x["seconds"])[:top], memory_rose=peaks)


def run_size(args: argparse.Namespace, size: int, engine: str) -> dict[str, Any] | None:
    """Land and build `size` records on `engine` (then Splink, an incremental build, as
    asked); the first build's line."""
    tmp = Path(tempfile.mkdtemp(prefix="b3_")) / f"b3_{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    one = argparse.Namespace(**{**vars(args), "records": [size], "engine": engine, "store": str(tmp)})
    try:
        built = step(one, "land") and step(one, "build", "--score")
        if built and args.splink:
            plain = step(one, "splink")
            if plain:
                emit(step="vs_splink", engine=engine, records=size, build_cpu_s=built[-1]["cpu_s"],
                     splink_cpu_s=plain[-1]["cpu_s"], cpu_ratio=round(built[-1]["cpu_s"] / plain[-1]["cpu_s"], 2), bar=2.0,
                     build_s=built[-1]["seconds"], splink_s=plain[-1]["seconds"])
        if built and args.changed:
            if step(one, "change"):
                pairs = [_build_pair(one, tmp, i) for i in range(args.repeat if engine == "duckdb" else 1)]
                pairs = [p for p in pairs if p is not None]
                if pairs:
                    inc = sorted((p[0] for p in pairs), key=lambda b: b["seconds"])[len(pairs) // 2]
                    whole = sorted((p[1] for p in pairs), key=lambda b: b["seconds"])[len(pairs) // 2]
                    emit(step="incremental_vs_full", engine=engine, records=size, changed=args.changed,
                         agreement=not args.agreement_off, runs=len(pairs), incremental_mode=inc["mode"],
                         incremental_s=inc["seconds"], full_s=whole["seconds"],
                         ratio=round(inc["seconds"] / whole["seconds"], 3), bar=0.25,
                         all_incremental_s=[p[0]["seconds"] for p in pairs], all_full_s=[p[1]["seconds"] for p in pairs],
                         incremental_stages_s=inc["stages_s"], full_stages_s=whole["stages_s"],
                         resolved=inc["resolved"], model_version=inc.get("model_version"))
        return built[-1] if built else None
    finally:
        if engine == "postgres":
            import psycopg

            with psycopg.connect(PG_DSN, autocommit=True) as con:
                con.execute(f"DROP SCHEMA IF EXISTS {tmp.name} CASCADE")
        shutil.rmtree(tmp.parent, ignore_errors=True)


def _build_pair(one: argparse.Namespace, tmp: Path, i: int) -> tuple[dict, dict] | None:
    """An incremental and a full build of the changed store. With several repeats (DuckDB)
    each runs on a fresh copy, so every pair starts from the same state."""
    if one.repeat <= 1 or one.engine != "duckdb":
        incremental, full = step(one, "build"), step(one, "build", "--full")
        return (incremental[-1], full[-1]) if incremental and full else None
    from threadline_profiles.testing import copy_store

    out = []
    for kind, extra in (("inc", ()), ("full", ("--full",))):
        copy = tmp.parent / f"{kind}{i}"
        shutil.rmtree(copy, ignore_errors=True)
        copy.mkdir()
        copy_store(tmp / "profiles.duckdb", copy / "profiles.duckdb")
        lines = step(argparse.Namespace(**{**vars(one), "store": str(copy)}), "build", *extra)
        shutil.rmtree(copy, ignore_errors=True)
        if not lines:
            return None
        out.append(lines[-1])
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, action="append", help="sizes to run (default 100k and 1M)")
    parser.add_argument("--engine", choices=["duckdb", "postgres", "spark", "both"], default="both",
                        help="both: DuckDB and Postgres; spark: Spark, then DuckDB beside it")
    parser.add_argument("--changed", type=float, default=0.0, help="then change this fraction of records and build incrementally")
    parser.add_argument("--agreement-off", action="store_true", help="resolution.agreement: null (deterministic rules only)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--names", choices=["census", "small"], default="census",
                        help="census: Faker's en_US names at their published frequencies (the default); small: the "
                        "40 first and 40 last names drawn uniformly, as the earlier figures were measured")
    parser.add_argument("--repeat", type=int, default=1, help="with --changed: run the incremental and the full build this "
                        "many times (DuckDB, each on a copy) and compare medians")
    parser.add_argument("--memory-limit", default="1GB", help="DuckDB memory_limit (the store's default is 1GB)")
    parser.add_argument("--statement-times", type=int, default=0, metavar="N",
                        help="print each build's N slowest SQL statements (Engine.run's THREADLINE_STATEMENT_TIMES)")
    parser.add_argument("--splink", action="store_true", help="then plain Splink on the same records, and the CPU ratio "
                        "of the full build to it (issue 12's bar: at most 2)")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--spark-driver-memory", default="2g", help="spark.driver.memory (local mode: the whole JVM)")
    parser.add_argument("--spark-partitions", type=int, default=4, help="spark.sql.shuffle.partitions")
    parser.add_argument("--step", choices=["land", "change", "build", "splink"], help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--score", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-report", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        args.records = args.records[0]
        try:
            {"land": land, "change": change, "build": build, "splink": splink_step}[args.step](args)
        finally:
            stop_jvm()
        return
    engines = {"both": ["duckdb", "postgres"], "spark": ["spark", "duckdb"]}.get(args.engine, [args.engine])
    for size in args.records or [100_000, 1_000_000]:
        built = {engine: run_size(args, size, engine) for engine in engines}
        if args.engine == "spark" and all(built.values()):
            compare(built["spark"], built["duckdb"])


def compare(spark: dict[str, Any], duck: dict[str, Any]) -> None:
    """Spark's first build beside DuckDB's on the same records: seconds, CPU-seconds and each
    stage's seconds, with Spark's over DuckDB's."""
    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 1) if b else None

    stages = {name: {"spark_s": s, "duckdb_s": duck["stages_s"].get(name), "ratio": ratio(s, duck["stages_s"].get(name, 0))}
              for name, s in spark["stages_s"].items()}
    emit(step="spark_vs_duckdb", records=spark["records"], same_profiles=spark["profiles"] == duck["profiles"],
         f1=[spark.get("f1"), duck.get("f1")], spark_s=spark["seconds"], duckdb_s=duck["seconds"],
         ratio_s=ratio(spark["seconds"], duck["seconds"]), spark_cpu_s=spark["cpu_s"], duckdb_cpu_s=duck["cpu_s"],
         ratio_cpu=ratio(spark["cpu_s"], duck["cpu_s"]), stages=stages)


if __name__ == "__main__":
    main()
