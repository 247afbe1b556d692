"""The distributed engine: one database of a Spark catalog, for stores that outgrow one machine.

Stages are written in DuckDB's dialect; this engine transpiles each statement with sqlglot
(`to_spark`). Spark SQL has no multi-statement transactions, and a plain (Parquet) table of
its catalog has no DELETE or UPDATE, so the engine keeps every store table behind a view:

- a store table `tl_members` is the view `tl_members` over a physical table
  `tl_members__g<n>`; reads go through the view, as on the other engines;
- a DELETE or UPDATE writes the table's new rows into the next physical table (a
  CREATE TABLE AS SELECT built from the statement's own syntax tree) and then switches the
  view to it;
- inside `transaction()` every table written to gets its next physical table and the
  statements of the transaction read and write those; `commit` switches each view (one
  CREATE OR REPLACE VIEW each, nothing else) and only then drops the old physical tables.
  A build killed before the commit leaves every view on the previous build's tables, and
  `rollback` drops the new ones.

Which physical table each view reads, and the last generation number of each store table, are
kept in memory (`_Catalog`, one per database and Spark session, shared by every store opened on
it and their handles) and changed as the engine switches views, so a statement on a store table
asks Spark's catalog nothing: this process is taken to be the only one writing the database (a
local session's Derby metastore admits one process anyway; on a cluster, two processes landing
into or building one store at once are not supported). A failed statement forgets all of it,
and the next one asks the catalog again.

Work tables (`tl_work_*`, which the stages make with `base.work_table`, and the `tl_next_*`
a full build publishes) are plain tables: nothing reads them across builds. Arrow comes in
as a Spark DataFrame registered as a temporary view, and results come out through `toArrow`
(or `toPandas`).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import sqlglot
from sqlglot import exp
from threadline.contracts import FatalError

from threadline_profiles.engines.base import Engine, for_dialect, safe_name

MIN_SPARK = (3, 5)
_PHYSICAL = "__g"  # tl_members__g3: the third physical table of tl_members
_SCRATCH = ("tl_work_", "tl_next_", "_tl_")  # plain tables: no view, no generations


class SparkUnavailableError(FatalError):
    """pyspark or a Java runtime is missing, or too old for this engine."""


class SparkUnreachableError(FatalError):
    """The Spark cluster (master or Spark Connect server) could not be reached."""


@dataclass(frozen=True)
class SparkSettings:
    """Where the store lives on Spark (from the `spark:` block of the destination config)."""

    master: str = "local[*]"
    remote: str | None = None  # a Spark Connect URL (sc://host:15002); used instead of `master`
    catalog: str | None = None  # e.g. spark_catalog, or a Unity/Glue/Iceberg catalog the session has
    database: str = "threadline_profiles"
    warehouse: str | None = None  # spark.sql.warehouse.dir for a session this engine starts
    conf: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The master or Spark Connect server, without what follows host:port (a Spark Connect
        URL may carry a token there), for messages."""
        url = self.remote or self.master
        parsed = urlparse(url)
        return f"{parsed.scheme}://{parsed.netloc}" if parsed.scheme in ("sc", "spark") and parsed.netloc else url


# ----------------------------------------------------------------------- the session


def require_spark() -> Any:
    """The pyspark module, after checking that it and a Java runtime are here and new enough."""
    try:
        import pyspark
    except ImportError as exc:
        raise SparkUnavailableError(
            "engine: spark needs pyspark, which is not installed",
            hint="install it with `pip install 'threadline-profiles[spark]'` (pyspark 3.5 or newer)",
        ) from exc
    version = tuple(int(p) for p in pyspark.__version__.split(".")[:2] if p.isdigit())
    if version < MIN_SPARK:
        raise SparkUnavailableError(
            f"engine: spark needs pyspark {'.'.join(map(str, MIN_SPARK))} or newer; this is {pyspark.__version__}",
            hint="upgrade it with `pip install -U 'pyspark>=3.5'`",
        )
    return pyspark


def require_java() -> None:
    """A local Spark session starts a JVM: say so before pyspark fails with a gateway error."""
    home = os.environ.get("JAVA_HOME")
    if (home and os.path.exists(os.path.join(home, "bin", "java"))) or shutil.which("java"):
        return
    raise SparkUnavailableError(
        "engine: spark with a local or cluster master starts a Java runtime, and none was found "
        "(no `java` on PATH and no JAVA_HOME)",
        hint="install Java 17: `apt-get install -y openjdk-17-jre-headless` (Debian/Ubuntu) or set JAVA_HOME; "
        "or use a Spark Connect server with `spark.remote: sc://host:15002`, which needs no local Java",
    )


_sessions: dict[tuple, Any] = {}
_sessions_lock = threading.Lock()


def spark_session(settings: SparkSettings) -> Any:
    """The process's SparkSession for these settings (one per process: Spark allows one
    SparkContext, and a JVM start costs seconds)."""
    require_spark()
    from pyspark.sql import SparkSession

    key = (settings.url, settings.warehouse, tuple(sorted(settings.conf.items())))
    with _sessions_lock:
        session = _sessions.get(key)
        if session is not None and not _stopped(session):
            return session
        reach(settings.remote or settings.master, settings.url)
        builder = SparkSession.builder.appName("threadline-profiles")
        if settings.remote:
            builder = builder.remote(settings.remote)
        else:
            require_java()
            builder = builder.master(settings.master)
            for name, value in local_catalog(settings).items():
                builder = builder.config(name, value)
            builder = builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
            if settings.master.startswith("local"):
                # Spark in this process talks only to itself: on loopback, not on whatever
                # address the host name resolves to (a network interface, otherwise)
                os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # read by the JVM as it starts
                # its Python workers (Engine.map_rows) run this interpreter, with the packages
                # this process imports, not whatever `python3` is first on PATH (pyspark's default)
                os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
                builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                builder = builder.config("spark.driver.memory", local_driver_memory())
        builder = builder.config("spark.sql.session.timeZone", "UTC")
        # Spark's console progress bars ([Stage 87:====>  (7 + 2) / 20]) would be drawn over the
        # sync's own progress lines and summary table; a cluster's UI still shows every stage
        builder = builder.config("spark.ui.showConsoleProgress", "false")
        for name, value in settings.conf.items():
            builder = builder.config(name, value)
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # py4j, grpc and Spark's own errors: all say the cluster is not there
            raise SparkUnreachableError(
                f"cannot reach Spark at {settings.url}: {_reason(exc)}",
                hint="check that the master or Spark Connect server is running and that `spark.master` "
                "or `spark.remote` in the destination config is right",
            ) from exc
        if not settings.remote:
            # Spark's own WARN lines (Hive type notes on every table written, ignored empty
            # paths) would bury the sync's output; errors still show, and a cluster's log
            # settings stay the cluster's
            session.sparkContext.setLogLevel("ERROR")
        _sessions[key] = session
        return session


def local_driver_memory() -> str:
    """The heap of a local session's one JVM, which is the driver, every executor and their
    memory store at once: a quarter of this machine's memory, between 1 and 8 GB. Spark's default
    of 1 GB is too little for the results a store reads back: a result larger than 1 MB reaches
    the driver through its memory store and is copied in its heap twice more on the way, so
    reading the 959,195 links of examples/mission (192 MB as Arrow, two tasks) ran out of heap,
    which Spark reports as `TaskResultLost`. `spark.conf` can set it (`spark.driver.memory`)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): Spark's own default
        return "1g"
    return f"{min(8192, max(1024, total // 4 // 2**20))}m"


def local_catalog(settings: SparkSettings) -> dict[str, str]:
    """A Spark started here keeps its catalog where its tables are: a Derby metastore inside the
    warehouse folder, so that the store outlives the process (Spark's default in-memory catalog
    forgets every table at exit). A cluster's session keeps the cluster's own metastore."""
    if not settings.master.startswith("local"):
        return {"spark.sql.warehouse.dir": settings.warehouse} if settings.warehouse else {}
    warehouse = os.path.abspath(settings.warehouse or "spark-warehouse")
    return {
        "spark.sql.warehouse.dir": warehouse,
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL":
            f"jdbc:derby:;databaseName={os.path.join(warehouse, 'metastore_db')};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={warehouse}",
    }


def reach(url: str, shown: str, timeout: float = 5.0) -> None:
    """A standalone master or a Spark Connect server answers on its port before a session is
    made for it (a session to a missing master otherwise waits for executors for ever)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("spark", "sc") or not parsed.hostname:
        return
    port = parsed.port or (7077 if parsed.scheme == "spark" else 15002)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
    except OSError as exc:
        raise SparkUnreachableError(
            f"cannot reach Spark at {shown}: {exc.strerror or exc}",
            hint="check that the master or Spark Connect server is running and that `spark.master` "
            "or `spark.remote` in the destination config is right",
        ) from exc


def _stopped(session: Any) -> bool:
    try:
        context = session.sparkContext
    except Exception:  # Spark Connect sessions have none
        return False
    return context._jsc is None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# ----------------------------------------------------------------------- the dialect


def _parse(sql: str) -> exp.Expression:
    return _utc_wall_clock(sqlglot.parse_one(sql, read="duckdb"))


def _utc_wall_clock(tree: exp.Expression) -> exp.Expression:
    """DuckDB's `ts AT TIME ZONE 'UTC'` of a zone-aware `ts` is the UTC wall-clock time, a
    TIMESTAMP without zone; sqlglot carries it to FROM_UTC_TIMESTAMP, which keeps Spark's
    zone-aware type, so tl_consent.at and the facts' times came out zone-aware on Spark only.
    On a session in UTC (every session this engine starts) the same value is a cast to
    TIMESTAMP_NTZ. The stages use AT TIME ZONE 'UTC' only on zone-aware values (traits/facts.py
    timestamp_expr), where the two agree."""
    for node in list(tree.find_all(exp.AtTimeZone)):
        zone = node.args.get("zone")
        if isinstance(zone, exp.Literal) and zone.is_string and zone.this.upper() == "UTC":
            node.replace(exp.cast(node.this.copy(), exp.DataType.build("TIMESTAMP", dialect="duckdb")))
    return tree


def _spark(tree: exp.Expression) -> str:
    return tree.sql(dialect="spark")


@lru_cache(maxsize=4096)
def to_spark(sql: str) -> str:
    """One DuckDB-dialect statement in Spark's dialect. (Work tables reach Spark as plain
    `CREATE TABLE`: `base.work_table`.)"""
    return _spark(_parse(sql))


def _target(tree: exp.Expression) -> str | None:
    """The table a statement writes to, if it writes to one."""
    node = tree.this if isinstance(tree, (exp.Insert, exp.Delete, exp.Update, exp.Create, exp.Drop, exp.Alter)) else None
    if isinstance(tree, exp.Drop) and node is None:
        # sqlglot 30 keeps a DROP's tables in a list: without this a DROP of a store table ran
        # as written, dropping its view at once (not at the commit) and leaving its table behind
        tables = tree.args.get("tables") or []
        node = tables[0] if len(tables) == 1 else None
    if isinstance(node, exp.Schema):
        node = node.this
    return node.name if isinstance(node, exp.Table) else None


def _rename_tables(tree: exp.Expression, names: dict[str, str]) -> exp.Expression:
    """Point table references at other tables, keeping the old name as the alias so that
    qualified columns (tl_members.profile_id) still resolve."""
    if not names:
        return tree
    ctes = {c.alias for c in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        new = names.get(table.name)
        if new is None or table.args.get("db") or table.name in ctes:
            continue
        is_target = table.parent is tree or isinstance(table.parent, exp.Schema) and table.parent.parent is tree
        old, alias = table.name, table.alias
        table.set("this", exp.to_identifier(new))
        if not alias and not is_target:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(old)))
    return tree


def _scratch(name: str) -> bool:
    return name.startswith(_SCRATCH)


# ----------------------------------------------------------------------- the engine


class _Catalog:
    """What the engine knows of one database's store tables (its statements run one at a time
    under the store's lock, but two handles' transactions may each take a physical table of the
    same store table)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.views: dict[str, str | None] = {}  # store table -> its physical table (None: no such table)
        self.generations: dict[str, int] = {}  # store table -> the last generation number given out

    def forget(self) -> None:
        with self.lock:
            self.views.clear()
            self.generations.clear()


def _catalog_of(session: Any, settings: SparkSettings) -> _Catalog:
    """The session's `_Catalog` of this database (kept on the session: a new session, after the
    last one stopped, starts from what the catalog says)."""
    with _sessions_lock:
        if not hasattr(session, "_threadline_catalogs"):
            session._threadline_catalogs = {}
        return session._threadline_catalogs.setdefault((settings.catalog, settings.database), _Catalog())


class SparkEngine(Engine):
    dialect = "spark"
    delete_rewrites_table = True

    def __init__(self, settings: SparkSettings, session: Any = None) -> None:
        self.settings = settings
        self.spark = session or spark_session(settings)
        self._arrow: set[str] = set()
        self._tx: dict[str, str | None] | None = None  # logical -> its new physical table (None: dropped)
        self._catalog = _catalog_of(self.spark, settings)
        self._switched: dict[str, str | None] = {}  # views the statement being planned switches (outside a transaction)
        catalog = f"`{settings.catalog}`." if settings.catalog else ""
        self._db = f"{catalog}`{settings.database}`"
        self._sql(f"CREATE DATABASE IF NOT EXISTS {self._db}")
        self._sql(f"USE {self._db}")

    @property
    def location(self) -> str:
        where = f"{self.settings.catalog}.{self.settings.database}" if self.settings.catalog else self.settings.database
        return f"Spark at {self.settings.url}, database {where}"

    def _sql(self, sql: str) -> Any:
        try:
            return self.spark.sql(sql)
        except Exception as exc:
            if _lost(exc):
                raise SparkUnreachableError(
                    f"lost the Spark session of the profile store ({self.location}): {_reason(exc)}",
                    hint="the build can be repeated: the previous profiles are kept and the next build starts over",
                ) from exc
            raise

    # ---------------------------------------------------------------- catalog

    def _exists(self, name: str) -> bool:
        # (`database.table` in one string: the two-argument form is deprecated since Spark 3.4 and
        # warned on every sync)
        return bool(self.spark.catalog.tableExists(f"`{self.settings.database}`.`{name}`")) if not self.settings.catalog else \
            bool(self._sql(f"SHOW TABLES IN {self._db} LIKE '{name}'").count())

    def _physical(self, name: str) -> str | None:
        """The physical table behind store table `name` (outside any transaction)."""
        with self._catalog.lock:
            if name in self._catalog.views:
                return self._catalog.views[name]
        if not self._exists(name):
            physical = None
        else:
            view = self._view_target(name)
            physical = view if view is not None else name  # a plain table made before it had a view
        with self._catalog.lock:
            self._catalog.views[name] = physical
        return physical

    def _view_target(self, name: str) -> str | None:
        try:
            text = self._sql(f"SHOW CREATE TABLE {name}").collect()[0][0]
        except Exception:
            return None
        tree = sqlglot.parse_one(text, read="spark")
        if not (isinstance(tree, exp.Create) and tree.kind == "VIEW"):
            return None
        source = tree.expression.find(exp.Table) if tree.expression else None
        return source.name if source is not None else None

    def _next_physical(self, name: str) -> str:
        with self._catalog.lock:
            last = self._catalog.generations.get(name)
        if last is None:
            rows = self._sql(f"SHOW TABLES IN {self._db} LIKE '{name}{_PHYSICAL}*'").collect()
            used = [int(n) for n in (r["tableName"].rsplit(_PHYSICAL, 1)[1] for r in rows) if n.isdigit()]
            last = max(used, default=0)
        with self._catalog.lock:
            number = max(last, self._catalog.generations.get(name, 0)) + 1
            self._catalog.generations[name] = number
        return f"{name}{_PHYSICAL}{number}"

    def _current(self, name: str) -> str | None:
        """The physical table statements read and write for `name` right now."""
        if self._tx is not None and name in self._tx:
            return self._tx[name]
        return self._physical(name)

    # ---------------------------------------------------------------- statements

    def execute(self, sql: str) -> None:
        tree = _parse(sql)
        self._switched = {}
        try:
            for statement in self._plan(tree):
                self._sql(statement)
        except BaseException:
            self._catalog.forget()
            raise
        with self._catalog.lock:
            self._catalog.views.update(self._switched)

    def _frame(self, sql: str) -> Any:
        """The DataFrame of one SELECT (DuckDB dialect), reading the transaction's tables."""
        tree = _parse(for_dialect(sql, self.dialect))
        if self._tx:
            tree = _rename_tables(tree, {k: v for k, v in self._tx.items() if v})
        return self._sql(_spark(tree))

    def query(self, sql: str) -> pa.Table:
        frame = self._frame(sql)
        try:
            if hasattr(frame, "toArrow"):
                return frame.toArrow()
            return pa.Table.from_pandas(frame.toPandas(), preserve_index=False)
        except Exception as exc:
            if not any(s in str(exc) for s in _TOO_BIG):
                raise
            memory = self.spark.conf.get("spark.driver.memory", "1g")
            raise FatalError(
                f"a result read back from the profile store ({self.location}) did not fit the Spark driver's "
                f"memory (spark.driver.memory {memory}): {_reason(exc)}",
                hint="raise `spark.driver.memory` (and `spark.driver.maxResultSize`) under `spark.conf` in the "
                "destination config",
            ) from exc

    def _plan(self, tree: exp.Expression) -> list[str]:
        """The Spark statements that do what one DuckDB statement does."""
        target = _target(tree)
        if isinstance(tree, exp.Create) and tree.kind == "VIEW":
            tree.set("replace", True)
        if target is None or _scratch(target) or target in self._arrow or (
                isinstance(tree, exp.Create) and tree.kind == "VIEW") or (
                isinstance(tree, exp.Drop) and tree.kind == "VIEW"):
            renamed = _rename_tables(tree, {k: v for k, v in (self._tx or {}).items() if v}) if self._tx else tree
            if target is not None and isinstance(tree, (exp.Create, exp.Drop, exp.Alter)):
                with self._catalog.lock:  # a view or table made, dropped or altered by its own name: ask again
                    self._catalog.views.pop(target, None)
            return self._scratch_plan(renamed, target)
        return self._store_plan(tree, target)

    def _scratch_plan(self, tree: exp.Expression, target: str | None) -> list[str]:
        if isinstance(tree, (exp.Delete, exp.Update)):
            new = f"{target}_tl_rewrite"
            return [f"DROP TABLE IF EXISTS {new}", *self._rewrite(tree, target, target, new),
                    f"DROP TABLE {target}", f"ALTER TABLE {new} RENAME TO {target}"]
        if isinstance(tree, exp.Alter) and _is_rename(tree):
            new = tree.args["actions"][0].this.name
            if not _scratch(new):  # a tl_next_ table published under its store name
                return self._publish_rename(target, new)
        if isinstance(tree, exp.Alter) and self._add_existing_column(tree, target):
            return []
        return [_spark(tree)]

    def _store_plan(self, tree: exp.Expression, name: str) -> list[str]:
        current = self._current(name)
        if isinstance(tree, exp.Create):
            if current is not None:
                if tree.args.get("exists"):
                    return []
                if not tree.args.get("replace"):
                    raise FatalError(f"table {name} already exists in {self.location}")
            physical = self._next_physical(name)
            tree.set("replace", None)
            tree.set("exists", None)
            _rename_tables(tree, {name: physical, **{k: v for k, v in (self._tx or {}).items() if v}})
            return [_spark(tree), *self._switch(name, physical, current)]
        if isinstance(tree, exp.Drop):
            if current is None:
                return []
            return self._switch(name, None, current)
        if current is None:
            return [_spark(tree)]  # let Spark say the table is missing
        reads = {k: v for k, v in (self._tx or {}).items() if v}
        if isinstance(tree, exp.Insert) and (self._tx is None or self._fresh(name)):
            # an append in place: outside a transaction one INSERT is atomic on its own, and a
            # table made in this transaction is read by nothing outside it until the commit
            return [_spark(_rename_tables(tree, {**reads, name: current}))]
        if isinstance(tree, exp.Alter) and self._add_existing_column(tree, name):
            return []
        physical = self._next_physical(name)
        if isinstance(tree, exp.Insert):
            insert = _rename_tables(tree, {**reads, name: physical})
            return [f"CREATE TABLE {physical} AS SELECT * FROM {current}", _spark(insert),
                    *self._switch(name, physical, current)]
        if isinstance(tree, (exp.Delete, exp.Update)):
            return [*self._rewrite(_rename_tables(tree, reads), name, current, physical),
                    *self._switch(name, physical, current)]
        if isinstance(tree, exp.Alter) and _is_rename(tree):
            return self._publish_rename(name, tree.args["actions"][0].this.name)
        if isinstance(tree, exp.Alter):
            columns = ", ".join(f"CAST(NULL AS {c.args['kind'].sql(dialect='spark')}) AS {c.name}"
                                for c in tree.args["actions"] if isinstance(c, exp.ColumnDef))
            return [f"CREATE TABLE {physical} AS SELECT *, {columns} FROM {current}", *self._switch(name, physical, current)]
        raise FatalError(f"the Spark engine cannot run this statement on store table {name}: {_spark(tree)[:120]}")

    def _publish_rename(self, source: str, name: str) -> list[str]:
        """ALTER TABLE tl_next_x RENAME TO tl_x: the built table becomes tl_x's next physical one."""
        current = self._current(name)
        physical = self._next_physical(name)
        return [f"ALTER TABLE {source} RENAME TO {physical}", *self._switch(name, physical, current)]

    def _fresh(self, name: str) -> bool:
        """Store table `name` has a physical table made in this transaction."""
        return self._tx is not None and self._tx.get(name) is not None

    def _switch(self, name: str, physical: str | None, old: str | None) -> list[str]:
        """Point store table `name` at `physical` (None: drop it). Inside a transaction this
        waits for `commit` (a physical table made earlier in the same transaction, which
        nothing else can read, goes now); outside it happens now, and the old physical table goes."""
        if self._tx is not None:
            made_here = self._fresh(name) and old != physical
            self._tx[name] = physical
            return [f"DROP TABLE IF EXISTS {old}"] if made_here else []
        self._switched[name] = physical
        out = [f"DROP VIEW IF EXISTS {name}"] if physical is None else [
            f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {physical}"]
        return out + ([f"DROP TABLE IF EXISTS {old}"] if old and old != physical and old != name else [])

    def _rewrite(self, tree: exp.Delete | exp.Update, name: str, source: str, out: str) -> list[str]:
        """A DELETE or UPDATE as a CREATE TABLE AS SELECT of the rows it leaves."""
        where = tree.args.get("where")
        condition = where.this if where is not None else exp.true()
        hit = exp.func("COALESCE", exp.paren(condition.copy()), exp.false())
        if isinstance(tree, exp.Delete):
            select = exp.select("*").from_(exp.to_table(source).as_(name)).where(exp.not_(hit))
        else:
            joined = tree.args.get("from_") or tree.args.get("from")
            if joined is not None:
                # UPDATE t SET ... FROM h WHERE <match>: t LEFT JOIN h ON <match>; a row is
                # updated where it found its h row (each t row is expected to match one at most,
                # as DuckDB's UPDATE ... FROM picks an arbitrary one otherwise)
                other = joined.this
                alias = other.alias_or_name
                marked = exp.select("*", exp.alias_(exp.true(), "_tl_hit")).from_(other.copy().as_(alias) if isinstance(
                    other, exp.Table) else other.copy())
                hit = exp.column("_tl_hit", table=alias)
            sets = {e.this.name: e.expression for e in tree.expressions}
            columns = []
            for column in self.table_columns(source):
                if column in sets:
                    value = exp.Case(ifs=[exp.If(this=hit.copy(), true=sets[column].copy())],
                                     default=exp.column(column, table=name))
                    columns.append(exp.alias_(value, column))
                else:
                    columns.append(exp.column(column, table=name))
            select = exp.select(*columns).from_(exp.to_table(source).as_(name))
            if joined is not None:
                select = select.join(marked.subquery(alias), on=condition.copy(), join_type="LEFT")
        return [f"CREATE TABLE {out} AS {_spark(select)}"]

    def _add_existing_column(self, tree: exp.Alter, name: str) -> bool:
        """ALTER TABLE ... ADD COLUMN IF NOT EXISTS of a column the table has: nothing to do."""
        actions = tree.args.get("actions") or []
        adds = [a for a in actions if isinstance(a, exp.ColumnDef)]
        if not adds or len(adds) != len(actions):
            return False
        have = {c.lower() for c in self.table_columns(name)}
        return all(a.name.lower() in have for a in adds)

    # ---------------------------------------------------------------- Arrow

    def register_arrow(self, name: str, data: pa.Table) -> None:
        frame = self.spark.createDataFrame(_plain(data)) if data.num_rows else self.spark.createDataFrame(
            [], _spark_schema(data.schema))
        frame.createOrReplaceTempView(name)
        self._arrow.add(name)

    def unregister(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)
        self._arrow.discard(name)

    def map_rows(self, source: str, columns: list[str], fn: Callable[[pa.Table], pa.Table], into: str,
                 batch_rows: int) -> None:
        """`fn` runs on the executors, over the batches Spark's Arrow exchange cuts
        (`mapInArrow`): the rows never pass through the driver, and `source` needs no
        numbering. The executors' Python must have threadline-profiles installed (the
        README's cluster how-to)."""
        select = f"SELECT {', '.join(columns)} FROM {source}"
        schema = fn(self.query(select + " LIMIT 0")).schema

        def each(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                yield from fn(pa.Table.from_batches([batch])).cast(schema).to_batches()

        view = f"_tl_map_{safe_name(into)}"
        self._frame(select).mapInArrow(each, _spark_schema(schema)).createOrReplaceTempView(view)
        try:
            self.execute(f"INSERT INTO {into} SELECT * FROM {view}")
        finally:
            self.spark.catalog.dropTempView(view)

    # ---------------------------------------------------------------- transactions

    def begin(self) -> None:
        self._tx = {}

    def commit(self) -> None:
        """Switch every view written in the transaction, then drop what they pointed at."""
        changed, self._tx = self._tx or {}, None
        old = {name: self._physical(name) for name in changed}
        try:
            for name, physical in changed.items():
                self._sql(f"DROP VIEW IF EXISTS {name}" if physical is None else
                          f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {physical}")
                with self._catalog.lock:
                    self._catalog.views[name] = physical
            for name, was in old.items():
                if was and was != changed[name] and was != name:
                    self._sql(f"DROP TABLE IF EXISTS {was}")
        except BaseException:
            self._catalog.forget()
            raise

    def rollback(self) -> None:
        changed, self._tx = self._tx or {}, None
        for physical in changed.values():
            if physical:
                try:
                    self._sql(f"DROP TABLE IF EXISTS {physical}")
                except Exception:
                    pass

    # ---------------------------------------------------------------- catalog questions

    def table_columns(self, table: str) -> list[str]:
        return list(self.column_types(table))

    def column_types(self, table: str) -> dict[str, str]:
        name = (self._tx or {}).get(table) or table
        if not self._exists(name) and name not in self._arrow:
            return {}
        return {c.name: _spark_type_name(c.dataType) for c in self.spark.table(name).schema.fields}

    def leftover_tables(self, prefix: str) -> dict[str, str]:
        rows = self._sql(f"SHOW TABLES IN {self._db} LIKE '{prefix}*'").collect()
        return {r["tableName"]: "BASE TABLE" for r in rows if not r["isTemporary"]}

    def require_levenshtein(self) -> None:
        """Spark SQL has LEVENSHTEIN built in."""

    def handle(self) -> SparkEngine:
        return SparkEngine(self.settings, self.spark)

    def close(self) -> None:
        """The session is the process's; it stays up for the next store handle."""

    def compact(self) -> str:
        return "nothing to compact: Spark rewrites a table's files whenever rows are deleted"


def _is_rename(tree: exp.Alter) -> bool:
    actions = tree.args.get("actions") or []
    return len(actions) == 1 and isinstance(actions[0], exp.AlterRename)


# how Spark says a result was too big for its driver (a fetch that ran out of heap loses the result)
_TOO_BIG = ("TaskResultLost", "java.lang.OutOfMemoryError", "spark.driver.maxResultSize")


def _lost(exc: BaseException) -> bool:
    text = str(exc)
    return any(s in text for s in ("Connection refused", "SparkContext was shut down", "Cannot call methods on a stopped",
                                   "StatusCode.UNAVAILABLE", "Answer from Java side is empty"))


def _plain(data: pa.Table) -> pa.Table:
    """Nested and dictionary Arrow values as text, and naive timestamps in microseconds."""
    cols = []
    for f, col in zip(data.schema, data.columns):
        if pa.types.is_nested(f.type) or pa.types.is_dictionary(f.type):
            col = pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())
        elif pa.types.is_large_string(f.type):
            col = col.cast(pa.string())
        cols.append(col)
    return pa.table(cols, names=data.column_names)


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql import types as T

    def one(t: pa.DataType) -> Any:
        if pa.types.is_boolean(t):
            return T.BooleanType()
        if pa.types.is_integer(t):
            return T.LongType()
        if pa.types.is_floating(t):
            return T.DoubleType()
        if pa.types.is_decimal(t):
            return T.DecimalType(min(t.precision, 38), t.scale)
        if pa.types.is_date(t):
            return T.DateType()
        if pa.types.is_timestamp(t):
            return T.TimestampType() if t.tz else T.TimestampNTZType()
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            return T.BinaryType()
        return T.StringType()

    return T.StructType([T.StructField(f.name, one(f.type), True) for f in schema])


def _spark_type_name(t: Any) -> str:
    """Spark's type, named the way the stages compare types (as DuckDB and Postgres name them)."""
    name = t.simpleString().upper()
    return {"STRING": "VARCHAR", "TIMESTAMP": "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NTZ": "TIMESTAMP",
            "INT": "INTEGER"}.get(name, name)


def settings_of(config: Any) -> SparkSettings:
    spark = config.spark
    return SparkSettings(master=spark.master, remote=spark.remote, catalog=spark.catalog, database=spark.database,
                         warehouse=str(spark.warehouse) if spark.warehouse else None, conf=dict(spark.conf))


__all__ = ["SparkEngine", "SparkSettings", "SparkUnavailableError", "SparkUnreachableError", "to_spark"]
