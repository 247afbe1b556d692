"""Start-up pays for what a command uses: `threadline --help`, `--version` and `plugins` import
no connector, no database driver, no Arrow, no HTTP kit and no sandbox; a sync imports the
connectors its job names and no other. What a command imported is read from `sys.modules` of a
real `threadline` process — never from a timing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# Modules a command that moves no data must not import: what makes start-up cost a second.
HEAVY = ("pyarrow", "pydantic", "numpy", "duckdb", "psycopg", "sqlglot", "requests", "yaml", "starlette", "uvicorn",
         "threadline.contracts", "threadline.engine", "threadline.http", "threadline.sandbox", "threadline.activation")

# Runs the CLI as the `threadline` script does, then prints every module the process imported.
RUN_CLI = textwrap.dedent("""
    import atexit, json, sys

    atexit.register(lambda: print("MODULES " + json.dumps(sorted(sys.modules))))
    sys.argv = ["threadline", *sys.argv[1:]]
    from threadline.cli import main
    main()
""")


# Prefixed to RUN_CLI: prints the files on the stack when pandas is first imported, if it is.
FIRST_PANDAS_IMPORT = textwrap.dedent("""
    import importlib.abc, json, sys, traceback

    class FirstPandas(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "pandas":
                sys.meta_path.remove(self)
                print("PANDAS BY " + json.dumps([f.filename for f in traceback.extract_stack()]), flush=True)
            return None

    sys.meta_path.insert(0, FirstPandas())
""")


def imported_by(*args: str, cwd=None) -> set[str]:
    out = subprocess.run([sys.executable, "-c", RUN_CLI, *args],
                         capture_output=True, text=True, timeout=120, cwd=cwd)
    line = next((x for x in out.stdout.splitlines() if x.startswith("MODULES ")), None)
    assert line is not None, f"threadline {' '.join(args)} printed no module list: {out.stderr}"
    return set(json.loads(line[len("MODULES "):]))


def heavy(modules: set[str]) -> list[str]:
    """The heavy modules, and any plugin module beyond its package and entry point."""
    found = [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    found += [m for m in modules if m.startswith("threadline_") and "." in m and not m.endswith(".plugin")]
    return sorted(found)



@pytest.mark.parametrize("args", [("--help",), ("--version",), ("plugins",), ("sandbox",)],
                         ids=["help", "version", "plugins", "sandbox-list"])
def test_commands_that_move_no_data_import_no_connector_driver_or_sandbox(args):
    assert heavy(imported_by(*args)) == []


def test_a_plugin_command_imports_its_own_module_only_when_it_runs():
    modules = imported_by("profiles", "--help")
    assert "threadline_profiles.cli.profiles" in modules
    assert "threadline_profiles.cli.activation" not in modules  # `push` and `forget` were not asked for


def test_a_command_leaves_what_it_built_to_the_process_exit_not_the_garbage_collector():
    # the interpreter's last collections would traverse every object a command built (~0.1 CPU-s
    # of a sync); frozen objects are not traversed. atexit handlers run after the command ends.
    probe = "import atexit, gc; atexit.register(lambda: print('FROZEN', gc.get_freeze_count()))\n"
    out = subprocess.run([sys.executable, "-c", probe + RUN_CLI, "--version"], capture_output=True, text=True, timeout=120)
    frozen = next(int(x.split()[1]) for x in out.stdout.splitlines() if x.startswith("FROZEN "))
    assert frozen > 10_000, out.stdout  # the modules and classes of click, rich, pluggy and threadline


def sync_modules(tmp_path, name: str) -> set[str]:
    """The modules a `threadline sync` of the file `name` (in tmp_path) into DuckDB imported."""
    (tmp_path / "job.yaml").write_text(textwrap.dedent(f"""\
        name: startup
        sources:
          shop: {{connector: files, config: {{streams: [{{name: people, path: {name}, primary_key: [id]}}]}}}}
        destinations:
          db: {{connector: duckdb, config: {{path: out.duckdb}}}}
    """))
    return imported_by("sync", "job.yaml", cwd=tmp_path)


def csv_sync_modules(tmp_path) -> set[str]:
    """The modules a `threadline sync` of a one-row CSV into DuckDB imported."""
    (tmp_path / "a.csv").write_text("id,name\n1,Ann\n")
    return sync_modules(tmp_path, "a.csv")


def test_a_sync_imports_the_connectors_its_job_names_and_no_other(tmp_path):
    modules = csv_sync_modules(tmp_path)
    assert "threadline_files.source" in modules and "threadline_duckdb.destination" in modules
    others = [m for m in heavy(modules) if m.startswith("threadline_")
              and not m.startswith(("threadline_files.", "threadline_duckdb."))]
    assert others == []
    assert not any(m == "threadline.sandbox" or m.startswith("threadline.sandbox.") for m in modules)


def test_a_csv_sync_off_a_terminal_imports_no_parquet_reader_and_no_progress_bars(tmp_path):
    modules = csv_sync_modules(tmp_path)
    assert "threadline_files.source" in modules  # the sync ran
    assert "pyarrow.parquet" not in modules and "rich.progress" not in modules


def test_a_parquet_sync_that_duckdb_loads_itself_imports_no_compute_kernels(tmp_path):
    # the file goes in whole through read_parquet: nothing is coerced, so pyarrow.compute (~0.03
    # CPU-s to import) is not needed
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [1, 2], "name": ["Ann", "Bo"]}), tmp_path / "a.parquet")
    modules = sync_modules(tmp_path, "a.parquet")
    assert "threadline_duckdb.destination" in modules and "pyarrow.parquet" in modules  # the sync ran
    assert "pyarrow.compute" not in modules


@pytest.mark.parametrize("data, name", [
    ('{"id": 1, "day": "2024-01-02", "n": 5}\n', "a.jsonl"),  # the date arrives as text
    # a key written twice (the upsert's repeated-key check) and a value the cast refuses
    ("id,day,n\n1,2024-01-02,5\n2,2024-01-03,x\n1,2024-01-04,7\n", "a.csv"),  # DuckDB reads it (native CSV)
    # the same through Arrow's reader: a bool column keeps a CSV file off DuckDB's own reader
    ("id,day,n,ok\n1,2024-01-02,5,true\n2,2024-01-03,x,false\n1,2024-01-04,7,true\n", "a.csv"),
], ids=["jsonl", "csv-upsert-with-a-rejected-row", "csv-upsert-through-arrow"])
def test_a_sync_into_duckdb_imports_no_pandas(tmp_path, data, name):
    # pyarrow imports pandas (~0.6 CPU-s) when handed a Python or NumPy value, and DuckDB 1.5
    # imports it through pyarrow.dataset when it scans a registered pyarrow Table
    pytest.importorskip("pandas", reason="pandas is not installed, so nothing could import it")
    (tmp_path / name).write_text(data)
    (tmp_path / "job.yaml").write_text(textwrap.dedent(f"""\
        name: startup
        max_rejected_share: 0.5
        sources:
          shop: {{connector: files, config: {{streams: [{{name: people, path: {name}, primary_key: [id],
                                                       columns: {{day: {{type: date}}, n: {{type: int64}}}}}}]}}}}
        destinations:
          db: {{connector: duckdb, config: {{path: out.duckdb}}}}
    """))
    out = subprocess.run([sys.executable, "-c", FIRST_PANDAS_IMPORT + RUN_CLI, "sync", "job.yaml"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    line = next((x for x in out.stdout.splitlines() if x.startswith("MODULES ")), None)
    assert line is not None and "threadline_duckdb.destination" in json.loads(line[len("MODULES "):]), out.stderr
    assert "succeeded" in out.stdout, out.stdout + out.stderr
    by = next((x for x in out.stdout.splitlines() if x.startswith("PANDAS BY ")), "PANDAS BY []")
    assert json.loads(by[len("PANDAS BY "):]) == []
