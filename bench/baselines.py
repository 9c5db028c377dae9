"""The tools furet is measured against, run from the controller against the same lab hosts.

- ``mysqldump | mysql``: the legacy tables dumped from legacy1 and loaded through HAProxy
  into the same Galera cluster (database ``furet_bench``), one stream, extended inserts.
  The load runs with sql_mode '' so the legacy dirt loads too (furet quarantines it
  instead: the baseline does less work, not more).
- mydumper + myloader (Debian's mydumper 0.10.1): the same three tables dumped with 4
  threads in 100,000-row files, then loaded with 4 threads through HAProxy (database
  ``furet_bench`` again).
- CSV + ``cqlsh COPY FROM``: the quote columns of both Cassandra query tables exported from
  legacy1 with ``mysql -B`` (tab-separated), then loaded by cqlsh (PyPI package ``cqlsh``,
  in its own venv under .cache/bench) into twin tables ``prod.bench_<table>`` with the
  same schema. No write timestamps (COPY cannot set them): again less work than furet.

- ``pt-table-sync --print`` (Debian's percona-toolkit): compares legacy1 and the Galera
  cluster table by table with chunk checksums (the two are not replicas, so it is given
  both DSNs) and prints the statements that would make them equal; the baseline of
  ``furet verify``.

Passwords reach the client tools through MYSQL_PWD / 0600 option files, never argv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.lab import REPO, LabEndpoints
from migration.config import DbSettings
from migration.lab.config import lab_ca_file

CACHE = REPO / ".cache" / "bench"
CQLSH_VERSION = "6.2.2"
MYDUMPER_THREADS = 4      # mydumper's and myloader's default
MYDUMPER_ROWS = 100_000   # tables cut in files of this many rows, loaded in parallel
CQLSH_VENV = CACHE / "cqlsh-venv"
BENCH_DATABASE = "furet_bench"
RUNTIME_TABLES = ("customer", "quote", "offer")

# The CSV columns of each Cassandra query table (the mapping of migration/flows/
# cassandra_prod.yml, written as SQL over lf_runtime.quote).
CASSANDRA_EXPORTS = {
    "quotes_by_customer": (
        "customer_id, created_ts, quote_id, uid, product, status, premium_cents, updated_ts",
        "customer_id, created_ts, id, uid, product, status, premium_cents, updated_ts"),
    "quotes_by_day": (
        "day, created_ts, quote_id, uid, customer_id, product, status, premium_cents, "
        "updated_ts",
        "DATE(FROM_UNIXTIME(created_ts DIV 1000)), created_ts, id, uid, customer_id, product, "
        "status, premium_cents, updated_ts"),
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


def ensure_cqlsh() -> Path:
    """cqlsh from PyPI in its own venv (it pins its own cassandra-driver)."""
    cqlsh = CQLSH_VENV / "bin" / "cqlsh"
    stamp = CQLSH_VENV / f".cqlsh-{CQLSH_VERSION}"
    if not stamp.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["python3", "-m", "venv", str(CQLSH_VENV)], check=True)
        subprocess.run([str(CQLSH_VENV / "bin" / "pip"), "install", "-q",
                        "--disable-pip-version-check", f"cqlsh=={CQLSH_VERSION}"], check=True)
        stamp.touch()
    return cqlsh


def _cqlshrc(lab: LabEndpoints) -> Path:
    rc = CACHE / "cqlshrc"
    # The ring takes TLS clients only; cqlsh checks the nodes' certificates with the CA.
    rc.write_text(f"[authentication]\nusername = {lab.cassandra_user}\n"
                  f"password = {lab.cassandra_password}\n"
                  f"[connection]\nssl = true\n[ssl]\ncertfile = {lab_ca_file()}\nvalidate = true\n")
    rc.chmod(0o600)
    return rc


def _cqlsh(lab: LabEndpoints, statement: str, timeout: int = 7200) -> str:
    result = subprocess.run(
        [str(ensure_cqlsh()), "--cqlshrc", str(_cqlshrc(lab)), "--request-timeout", "120",
         "-e", statement, lab.cassandra_hosts[0]],
        capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise SystemExit(f"bench: cqlsh failed: {result.stderr[-1500:]}")
    return result.stdout + result.stderr


def cqlsh_copy_into_cassandra(lab: LabEndpoints, workers: int = 0) -> BaselineResult:
    """``workers`` 0 keeps cqlsh's own NUMPROCESSES default (CPUs - 1: 1 on the build
    machine). With 4 processes its multi-partition batches pushed a lab node (512 MiB heap)
    into OutOfMemoryError at 1 M quotes."""
    ddl = (REPO / "migration" / "target" / "cql" / "prod.cql").read_text()
    for table in CASSANDRA_EXPORTS:
        start = ddl.index(f"CREATE TABLE IF NOT EXISTS {{keyspace}}.{table}")
        end = ddl.find(";", start)
        create = ddl[start:end if end > 0 else None].format(keyspace="prod").replace(
            f"prod.{table}", f"prod.bench_{table}")
        _cqlsh(lab, create)
        _cqlsh(lab, f"TRUNCATE prod.bench_{table}")
    started = time.monotonic()
    rows = 0
    lines = []
    for table, (columns, select) in CASSANDRA_EXPORTS.items():
        csv = CACHE / f"{table}.tsv"
        with csv.open("w") as out:
            subprocess.run(["mysql", "-h", lab.legacy.host, "-u", lab.legacy.user, "-B", "-N",
                            "--init-command=SET time_zone = '+00:00'", "-e",
                            f"SELECT {select} FROM lf_runtime.quote", "lf_runtime"],
                           env=_env(lab.legacy.password), stdout=out, check=True)
        output = _cqlsh(lab, f"COPY prod.bench_{table} ({columns}) FROM '{csv}' WITH "
                             f"DELIMITER = '\t' AND NULL = 'NULL' AND HEADER = false AND "
                             + (f"NUMPROCESSES = {workers} AND " if workers else "")
                             # the lab's 512 MiB-heap nodes time out now and then
                             + f"MAXATTEMPTS = 20 AND ERRFILE = '{CACHE / (table + '.err')}'")
        imported = [ln for ln in output.splitlines() if "rows imported" in ln]
        lines += imported
        if imported:
            rows += int(imported[-1].split()[0])
        csv.unlink()
    seconds = time.monotonic() - started
    for table in CASSANDRA_EXPORTS:
        _cqlsh(lab, f"DROP TABLE prod.bench_{table}")
    return BaselineResult("CSV + cqlsh COPY FROM", rows, seconds,
                          f"NUMPROCESSES={workers or 'default'}; " + " / ".join(lines))


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
