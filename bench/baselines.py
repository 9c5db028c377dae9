"""The tools furet is measured against, run from the controller against the same lab hosts.

- ``mysqldump | mysql``: the legacy tables dumped from legacy1 and loaded through HAProxy
  into the same Galera cluster (database ``furet_bench``), one stream, extended inserts.
  The load runs with sql_mode '' so the legacy dirt loads too (furet quarantines it
  instead: the baseline does less work, not more).
- mydumper + myloader (Debian's mydumper 0.10.1): the same three tables dumped with 4
  threads in 100,000-row files, then loaded with 4 threads through HAProxy (database
  ``furet_bench`` again).
- TSV + ``dsbulk load``: the quote columns of both Cassandra query tables exported from
  legacy1 with ``mysql -B`` (tab-separated, sorted by partition), then loaded by DataStax
  Bulk Loader 1.10.0 (its modules from Maven Central, bench/dsbulk/pom.xml; run with the
  build machine's Java 17; batches of 10 statements per replica set, the best settings
  tried) into twin tables ``prod.bench_<table>`` with the same schema. No write
  timestamps: less work than furet's ``USING TIMESTAMP`` writes. (``cqlsh COPY FROM``,
  tried in earlier runs, never finished its first table at 1 M quotes on the lab.)

- ``pt-table-sync --print`` (Debian's percona-toolkit): compares legacy1 and the Galera
  cluster table by table with chunk checksums (the two are not replicas, so it is given
  both DSNs) and prints the statements that would make them equal; the baseline of
  ``furet verify``.

Passwords reach the client tools through MYSQL_PWD / 0600 option files, never argv.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.lab import REPO, LabEndpoints
from bench.steps import run_or_exit
from migration.cassandra_session import cassandra_session
from migration.config import CassandraSettings, DbSettings
from migration.lab.config import lab_ca_file

CACHE = REPO / ".cache" / "bench"
DSBULK_POM = REPO / "bench" / "dsbulk" / "pom.xml"
DSBULK_HOME = CACHE / "dsbulk"
DSBULK_MAIN = "com.datastax.oss.dsbulk.runner.DataStaxBulkLoader"
# Lab-only: guards a trust store that holds the lab CA's public certificate, nothing secret.
DSBULK_STORE_PASSWORD = "furet-lab-truststore"
MYDUMPER_THREADS = 4      # mydumper's and myloader's default
MYDUMPER_ROWS = 100_000   # tables cut in files of this many rows, loaded in parallel
BENCH_DATABASE = "furet_bench"
RUNTIME_TABLES = ("customer", "quote", "offer")

# The TSV columns of each Cassandra query table (the mapping of migration/flows/
# cassandra_prod.yml, written as SQL over lf_runtime.quote), and the export's order: by
# partition, so that dsbulk's batches hold rows of few partitions (dsbulk's own tuning
# advice; unsorted, its PARTITION_KEY batches held 1.00 row on average).
CASSANDRA_EXPORTS = {
    "quotes_by_customer": (
        "customer_id, created_ts, quote_id, uid, product, status, premium_cents, updated_ts",
        "customer_id, created_ts, id, uid, product, status, premium_cents, updated_ts",
        "customer_id, created_ts DESC, id"),
    "quotes_by_day": (
        "day, created_ts, quote_id, uid, customer_id, product, status, premium_cents, "
        "updated_ts",
        "DATE(FROM_UNIXTIME(created_ts DIV 1000)), created_ts, id, uid, customer_id, product, "
        "status, premium_cents, updated_ts",
        "1, created_ts, id"),
}


@dataclass
class BaselineResult:
    name: str
    rows: int
    seconds: float
    detail: str = ""


def _env(password: str) -> dict[str, str]:
    return {**os.environ, "MYSQL_PWD": password}


def _mysql(settings: DbSettings, sql: str, database: str = "") -> str:
    cmd = ["mysql", "-h", settings.host, "-P", str(settings.port), "-u", settings.user,
           "-B", "-N", "-e", sql]
    if database:
        cmd.append(database)
    return subprocess.run(cmd, env=_env(settings.password), check=True, capture_output=True,
                          text=True).stdout


def mysqldump_into_galera(lab: LabEndpoints) -> BaselineResult:
    _mysql(lab.target, f"DROP DATABASE IF EXISTS {BENCH_DATABASE}; "
                       f"CREATE DATABASE {BENCH_DATABASE}")
    started = time.monotonic()
    dump = subprocess.Popen(
        ["mysqldump", "-h", lab.legacy.host, "-u", lab.legacy.user, "--single-transaction",
         "--quick", "--skip-lock-tables", "--no-tablespaces", "lf_runtime", *RUNTIME_TABLES],
        env=_env(lab.legacy.password), stdout=subprocess.PIPE)
    load = subprocess.run(
        ["mysql", "-h", lab.target.host, "-P", str(lab.target.port), "-u", lab.target.user,
         "--init-command=SET SESSION sql_mode = ''", BENCH_DATABASE],
        env=_env(lab.target.password), stdin=dump.stdout, capture_output=True, text=True)
    assert dump.stdout is not None
    dump.stdout.close()
    dump_rc = dump.wait()
    seconds = time.monotonic() - started
    if dump_rc != 0 or load.returncode != 0:
        raise SystemExit(f"bench: mysqldump | mysql failed (dump exit {dump_rc}, load exit "
                         f"{load.returncode}): {load.stderr[-1000:]}")
    return BaselineResult("mysqldump | mysql", _count_and_drop(lab), seconds,
                          "one stream, extended inserts")


def _count_and_drop(lab: LabEndpoints) -> int:
    """Rows the baseline loaded into furet_bench, which is then dropped (~1 GB per node)."""
    counts = _mysql(lab.target, " UNION ALL ".join(
        f"SELECT COUNT(*) FROM {BENCH_DATABASE}.{t}" for t in RUNTIME_TABLES))
    _mysql(lab.target, f"DROP DATABASE {BENCH_DATABASE}")
    return sum(int(n) for n in counts.split())


def mydumper_into_galera(lab: LabEndpoints, threads: int = MYDUMPER_THREADS) -> BaselineResult:
    """mydumper (``threads`` threads, tables cut every MYDUMPER_ROWS rows, one consistent
    snapshot) into a directory on the controller, then myloader (``threads`` threads)
    through HAProxy into the same cluster. myloader sets its sessions' sql_mode to
    NO_AUTO_VALUE_ON_ZERO, not strict (the legacy dirt loads, as with the mysqldump
    baseline); binary logging stays as the server has it (``--enable-binlog``: myloader
    would otherwise turn sql_log_bin off)."""
    out = CACHE / "mydumper"
    shutil.rmtree(out, ignore_errors=True)  # a scratch dir, absent on a first run
    _mysql(lab.target, f"DROP DATABASE IF EXISTS {BENCH_DATABASE}; "
                       f"CREATE DATABASE {BENCH_DATABASE}")
    legacy_cnf = _option_file("legacy", lab.legacy)
    target_cnf = _option_file("target", lab.target)
    started = time.monotonic()
    for cmd in (["mydumper", f"--defaults-file={legacy_cnf}", "-h", lab.legacy.host,
                 # the whole database: its three tables (0.10.1 dumps nothing with -T here)
                 "-B", "lf_runtime", "--trx-consistency-only", "-t", str(threads),
                 "-r", str(MYDUMPER_ROWS), "--ssl", "-o", str(out)],
                ["myloader", f"--defaults-file={target_cnf}", "-h", lab.target.host,
                 "-P", str(lab.target.port), "-d", str(out), "-B", BENCH_DATABASE,
                 "-t", str(threads), "--enable-binlog", "--ssl", "-v", "1"]):
        result = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        if result.returncode != 0:
            raise SystemExit(f"bench: {cmd[0]} failed ({result.returncode}): "
                             f"{(result.stderr or result.stdout)[-1000:]}")
    seconds = time.monotonic() - started
    shutil.rmtree(out, ignore_errors=True)  # the dump's files: ~1 GB nobody needs now
    return BaselineResult("mydumper + myloader", _count_and_drop(lab), seconds,
                          f"{threads} threads each, tables cut every {MYDUMPER_ROWS:,} rows")


def ensure_dsbulk() -> Path:
    """dsbulk's classpath (bench/dsbulk/pom.xml) from Maven Central, once per pom: the
    directory of jars to run ``DSBULK_MAIN`` with."""
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise SystemExit("bench: dsbulk needs java and mvn (Debian packages "
                         "openjdk-17-jre-headless and maven)")
    lib = DSBULK_HOME / "lib"
    stamp = DSBULK_HOME / f".pom-{hashlib.sha256(DSBULK_POM.read_bytes()).hexdigest()[:12]}"
    if not stamp.exists():
        # a classpath of another pom: its jars (absent on a first run) and its stamp must
        # not stay next to this one's
        shutil.rmtree(lib, ignore_errors=True)
        for old in DSBULK_HOME.glob(".pom-*"):
            old.unlink()
        run_or_exit(["mvn", "-q", "-B", "-f", str(DSBULK_POM), "dependency:copy-dependencies",
                     f"-DoutputDirectory={lib}"], "fetching dsbulk from Maven Central")
        stamp.touch()
    return lib


def _dsbulk_conf(lab: LabEndpoints) -> Path:
    """dsbulk's settings file (0600: it holds the lab password, never argv): the ring's
    nodes, TLS checked against the lab CA (a PKCS12 trust store made from it), the account,
    and the TSV format of ``mysql -B``."""
    store = DSBULK_HOME / "truststore.p12"
    store.unlink(missing_ok=True)  # keytool refuses an alias that is already there
    subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "furet-lab-ca",
                    "-file", str(lab_ca_file()), "-keystore", str(store), "-storetype",
                    "PKCS12", "-storepass", DSBULK_STORE_PASSWORD],
                   capture_output=True, check=True)
    nodes = ", ".join(json.dumps(f"{h}:9042") for h in lab.cassandra_hosts)
    conf = DSBULK_HOME / "bench.conf"
    conf.touch(mode=0o600)
    conf.chmod(0o600)
    conf.write_text(f"""datastax-java-driver {{
  basic.contact-points = [{nodes}]
  basic.load-balancing-policy.local-datacenter = {json.dumps(lab.cassandra_dc)}
  advanced.auth-provider {{
    class = PlainTextAuthProvider
    username = {json.dumps(lab.cassandra_user)}
    password = {json.dumps(lab.cassandra_password)}
  }}
  advanced.ssl-engine-factory {{
    class = DefaultSslEngineFactory
    truststore-path = {json.dumps(str(store))}
    truststore-password = {json.dumps(DSBULK_STORE_PASSWORD)}
  }}
}}
dsbulk {{
  # the best of the settings tried on the lab (1.00 row per PARTITION_KEY batch unsorted;
  # 200,000 rows: 2,214 rows/s by default, 5,414 sorted by partition with these)
  batch {{ mode = REPLICA_SET, maxBatchStatements = 10 }}
  connector.csv {{ delimiter = "\\t", header = false, escape = "\\\\", quote = "\\u0000" }}
  codec.nullStrings = ["NULL"]
  log.directory = {json.dumps(str(DSBULK_HOME / "logs"))}
}}
""")
    return conf


def _twin_tables(lab: LabEndpoints, drop: bool = False) -> None:
    """``prod.bench_<table>``: the query tables' schema (migration/target/cql/prod.cql),
    created empty, or dropped."""
    ddl = (REPO / "migration" / "target" / "cql" / "prod.cql").read_text()
    settings = CassandraSettings(tuple(lab.cassandra_hosts), user=lab.cassandra_user,
                                 password=lab.cassandra_password, local_dc=lab.cassandra_dc,
                                 ssl_ca=str(lab_ca_file()))
    cluster, session = cassandra_session(settings)
    try:
        for table in CASSANDRA_EXPORTS:
            if drop:
                session.execute(f"DROP TABLE IF EXISTS prod.bench_{table}", timeout=120)
                continue
            start = ddl.index(f"CREATE TABLE IF NOT EXISTS {{keyspace}}.{table}")
            end = ddl.find(";", start)
            create = ddl[start:end if end > 0 else None].format(keyspace="prod").replace(
                f"prod.{table}", f"prod.bench_{table}", 1)
            session.execute(create, timeout=120)
            session.execute(f"TRUNCATE prod.bench_{table}", timeout=120)
    finally:
        cluster.shutdown()


def dsbulk_into_cassandra(lab: LabEndpoints) -> BaselineResult:
    """Both query tables exported from legacy1 as TSV (``mysql -B``, sorted by partition),
    each loaded by ``dsbulk load`` into its twin table: batches of up to 10 statements of one
    replica set (the unlogged_batch_across_partitions_warn_threshold, as furet's), its other
    settings at their defaults (LOCAL_ONE writes). The export is inside the time, as
    furet's reads are."""
    lib = ensure_dsbulk()
    conf = _dsbulk_conf(lab)
    try:
        _twin_tables(lab)
        started = time.monotonic()
        rows, lines = 0, []
        for table, (columns, select, order) in CASSANDRA_EXPORTS.items():
            total, failed = _dsbulk_load(lab, lib, conf, table, columns,
                                         f"SELECT {select} FROM lf_runtime.quote "
                                         f"ORDER BY {order}")
            rows += total - failed
            lines.append(f"{table}: {total:,} records, {failed:,} failed")
        seconds = time.monotonic() - started
    finally:
        conf.unlink()  # it holds the lab password
    _twin_tables(lab, drop=True)
    return BaselineResult("TSV + dsbulk load", rows, seconds, "; ".join(lines))


def _dsbulk_load(lab: LabEndpoints, lib: Path, conf: Path, table: str, columns: str,
                 select: str) -> tuple[int, int]:
    """``select`` exported from legacy1 as TSV, loaded into ``prod.bench_<table>``:
    (records, failed records)."""
    tsv = CACHE / f"{table}.tsv"
    with tsv.open("w") as out:
        subprocess.run(["mysql", "-h", lab.legacy.host, "-u", lab.legacy.user, "-B", "-N",
                        "--init-command=SET time_zone = '+00:00'", "-e", select, "lf_runtime"],
                       env=_env(lab.legacy.password), stdout=out, check=True)
    mapping = ", ".join(f"{i}={c.strip()}" for i, c in enumerate(columns.split(",")))
    try:
        result = subprocess.run(
            ["java", "-cp", f"{lib}/*", DSBULK_MAIN, "load", "-f", str(conf),
             "-url", str(tsv), "-k", "prod", "-t", f"bench_{table}", "-m", mapping],
            capture_output=True, text=True, timeout=7200)
    finally:
        tsv.unlink()
    summary = _dsbulk_summary(result.stdout + result.stderr)  # its console is stderr
    # exit 1: completed with some records failed (counted), 0: all loaded
    if result.returncode not in (0, 1) or summary is None:
        raise SystemExit(f"bench: dsbulk load of {table} failed ({result.returncode}): "
                         f"{(result.stdout + result.stderr)[-1500:]}")
    return summary


def _dsbulk_summary(output: str) -> tuple[int, int] | None:
    """(total, failed) from dsbulk's closing table ``total | failed | rows/s | ...``."""
    lines = output.splitlines()
    found = None  # the last table: dsbulk also prints it as progress while it loads
    for i, line in enumerate(lines[:-1]):
        if line.split("|")[0].strip() == "total":
            cells = [c.strip().replace(",", "") for c in lines[i + 1].split("|")]
            if len(cells) >= 2 and cells[0].isdigit() and cells[1].isdigit():
                found = int(cells[0]), int(cells[1])
    return found


def _option_file(name: str, settings: DbSettings) -> Path:
    """A 0600 client option file with the account (mode set before the password is in) and
    the lab's CA: the lab's accounts REQUIRE SSL, and a client library that is not told
    to use TLS (DBD::mysql for pt-table-sync) is refused."""
    path = CACHE / f"{name}.cnf"
    CACHE.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(f"[client]\nuser={settings.user}\npassword={settings.password}\n"
                    f"ssl-ca={lab_ca_file()}\n")
    return path


def pt_table_sync(lab: LabEndpoints) -> BaselineResult:
    """pt-table-sync --print over the runtime tables, legacy1 -> the cluster via HAProxy."""
    legacy_cnf = _option_file("legacy", lab.legacy)
    target_cnf = _option_file("target", lab.target)
    started = time.monotonic()
    printed = 0
    for table in RUNTIME_TABLES:
        result = subprocess.run(
            ["pt-table-sync", "--print", "--no-check-slave", "--no-check-triggers",
             "--algorithms", "Chunk,Nibble",
             f"F={legacy_cnf},h={lab.legacy.host},D=lf_runtime,t={table}",
             f"F={target_cnf},h={lab.target.host},P={lab.target.port},D=lf_runtime,t={table}"],
            capture_output=True, text=True, errors="replace")  # legacy latin1 bytes
        if result.returncode not in (0, 1, 2):  # 2: differences found
            raise SystemExit(f"bench: pt-table-sync {table} failed ({result.returncode}): "
                             f"{result.stderr[-1500:]}")
        printed += sum(1 for ln in result.stdout.splitlines()
                       if ln.startswith(("INSERT", "REPLACE", "DELETE", "UPDATE")))
    seconds = time.monotonic() - started
    return BaselineResult("pt-table-sync --print", 0, seconds,
                          f"{printed:,} sync statements printed")
