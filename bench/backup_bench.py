"""Benchmark: `stackmedic-job backup` and `verify` against plain `mariadb-dump | gzip`.

One run starts a private MariaDB, fills a database of a few hundred MB (Petclinic-like
tables; `--rows` visits of ~230 bytes each), then times, in alternating turns on the same
database:

- plain:   mariadb-dump --single-transaction --routines --triggers --events DB | gzip -6 > F
- ours:    stackmedic-job backup --database DB   (same dump options + SHA-256, row counts,
           fsync, manifest)
- load:    gzip -dc F | mariadb SCRATCH           (what a plain restore test would do)
- verify:  stackmedic-job verify --database DB    (checksum + load into a scratch db + checks)
- restore: stackmedic-job restore after DROP DATABASE, vs gzip -dc F | mariadb NEWDB; one
           dropped table vs --whole; point-in-time replay of --events single-row events by
           jobs/pitr.py vs `mariadb-binlog | mariadb` on the same events

The medians and ratios go to docs/benchmarks.md between the backup markers.

    .venv/bin/python -m bench.backup_bench [--rows 1300000] [--runs 5] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from stackmedic.jobs.grants import backup_grants, binlog_grants, restore_grants, verify_grants

from bench.report import write_section
from harness.services import MariaDB, require_binary

DB = "benchclinic"
PASSWORD = "bench-pw"  # noqa: S105 - a throwaway server
DUMP_OPTS = "--single-transaction --routines --triggers --events --hex-blob --no-tablespaces"


def fill(server: MariaDB, rows: int) -> int:
    """Petclinic-like tables, the bulk in visits; returns the data size in bytes."""
    statements = [
        f"CREATE DATABASE {DB} CHARACTER SET utf8mb4",
        f"USE {DB}",
        f"""CREATE TABLE {DB}.owners (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, first_name VARCHAR(30),
            last_name VARCHAR(30), address VARCHAR(255), city VARCHAR(80), telephone VARCHAR(20))""",
        f"""CREATE TABLE {DB}.pets (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(30),
            birth_date DATE, type_id INT UNSIGNED, owner_id INT UNSIGNED, INDEX (owner_id))""",
        f"""CREATE TABLE {DB}.visits (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, pet_id INT UNSIGNED,
            visit_date DATE, description VARCHAR(255), notes TEXT, INDEX (pet_id))""",
        f"""INSERT INTO {DB}.owners (first_name, last_name, address, city, telephone)
            SELECT ELT(1 + seq % 5, 'George', 'Betty', 'Eduardo', 'Harold', 'Zoë'),
                   ELT(1 + seq % 4, 'Franklin', 'Davis', 'Müller', 'Escobito'),
                   CONCAT(seq, ' Main St.'), ELT(1 + seq % 3, 'Madison', 'Sun Prairie', 'Monona'),
                   LPAD(seq, 10, '6085')
            FROM seq_1_to_{max(1, rows // 20)}""",
        f"""INSERT INTO {DB}.pets (name, birth_date, type_id, owner_id)
            SELECT CONCAT('pet', seq), DATE('2010-01-01') + INTERVAL seq % 5000 DAY, 1 + seq % 6,
                   1 + seq % {max(1, rows // 20)}
            FROM seq_1_to_{max(1, rows // 10)}""",
        # Notes: a vet's words (repetitive) and a record number (not): compresses ~4x like real text.
        f"""INSERT INTO {DB}.visits (pet_id, visit_date, description, notes)
            SELECT 1 + seq % {max(1, rows // 10)}, DATE('2020-01-01') + INTERVAL seq % 2000 DAY,
                   ELT(1 + seq % 4, 'rabies shot', 'neutered', 'check-up', 'dental cleaning'),
                   CONCAT(ELT(1 + seq % 3, 'Healthy, weight stable; ', 'Mild otitis, drops prescribed; ',
                              'Vaccinations up to date; '),
                          MD5(seq), ' ', SHA1(seq), ' follow-up in ', seq % 90, ' days; owner informed.',
                          REPEAT(' ok', seq % 20))
            FROM seq_1_to_{rows}""",
    ]
    server.execute(*statements, *(f"ANALYZE TABLE {DB}.{t}" for t in ("owners", "pets", "visits")))
    (size,) = server.execute(
        f"SELECT SUM(DATA_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{DB}'"
    )[0]
    return int(size)


def timed(argv: list[str] | str, env: dict[str, str] | None = None, shell: bool = False) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, shell=shell, capture_output=True, check=False)  # noqa: S602
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    return elapsed


def run(rows: int, runs: int, workdir: Path, restore_runs: int = 3, events: int = 20000) -> dict:
    require_binary("mariadb-dump")
    server = MariaDB(workdir / "mariadb", binlog=True).start()
    try:
        t0 = time.perf_counter()
        data_bytes = fill(server, rows)
        fill_s = time.perf_counter() - t0
        server.create_user("bench_backup", PASSWORD, backup_grants(DB))
        server.create_user("bench_restore", PASSWORD, restore_grants(DB))
        server.create_user("bench_verify", PASSWORD, verify_grants())
        defaults = workdir / "client.cnf"
        defaults.write_text(
            f"[client]\nuser=bench_backup\npassword={PASSWORD}\nhost=127.0.0.1\nport={server.port}\n"
        )
        defaults.chmod(0o600)
        restore_defaults = workdir / "restore.cnf"
        restore_defaults.write_text(
            f"[client]\nuser=bench_restore\npassword={PASSWORD}\nhost=127.0.0.1\nport={server.port}\n"
        )
        restore_defaults.chmod(0o600)
        config = workdir / "jobs.yml"
        user = {"password_env": "BENCH_PW"}
        config.write_text(
            yaml.safe_dump(
                {
                    "state_dir": str(workdir / "state"),
                    "databases": {
                        DB: {
                            "connection": {"host": "127.0.0.1", "port": server.port},
                            "backup_user": {"user": "bench_backup", **user},
                            "restore_user": {"user": "bench_restore", **user},
                            "verify_user": {"user": "bench_verify", **user},
                            "binlog_user": {"user": "bench_binlog", **user},
                            "backup_dir": str(workdir / "backups"),
                            "required_tables": ["owners", "pets", "visits"],
                        }
                    },
                }
            )
        )
        env = {**os.environ, "BENCH_PW": PASSWORD}
        job = [sys.executable, "-m", "stackmedic.jobs", "--config.file", str(config), "--log.level", "warn"]
        plain_file = workdir / "plain.sql.gz"
        plain = f"mariadb-dump --defaults-extra-file={defaults} {DUMP_OPTS} {DB} | gzip -6 > {plain_file}"
        plain_times, ours_times = [], []
        for i in range(runs):
            # alternate the order so that neither always runs on a warmer cache
            pair = [("plain", plain), ("ours", None)] if i % 2 == 0 else [("ours", None), ("plain", plain)]
            for name, cmd in pair:
                if name == "plain":
                    plain_times.append(timed(["bash", "-o", "pipefail", "-c", cmd]))
                else:
                    ours_times.append(timed([*job, "backup", "--database", DB], env=env))
                    time.sleep(1.1)  # one backup per second: the next name must differ
        server.create_user("bench_binlog", PASSWORD, binlog_grants())
        if not runs:  # --runs 0: the restore benchmark alone
            return {"restore": restore_run(server, workdir, job, env, restore_runs, events), "runs": 0}
        backups = sorted((workdir / "backups" / DB).glob("*.sql.gz"))
        manifest = json.loads(Path(str(backups[-1]) + ".json").read_text())
        server.execute("CREATE DATABASE stackmedic_restore_plainbench")
        load = (
            f"gzip -dc {plain_file} | mariadb --defaults-extra-file={restore_defaults} --binary-mode "
            "stackmedic_restore_plainbench"
        )
        load_s = timed(["bash", "-o", "pipefail", "-c", load])
        server.execute("DROP DATABASE stackmedic_restore_plainbench")
        verify_s = timed([*job, "verify", "--database", DB], env=env)
        restored = restore_run(server, workdir, job, env, restore_runs, events) if restore_runs else None
        return {
            "restore": restored,
            "rows": rows,
            "data_bytes": data_bytes,
            "fill_s": fill_s,
            "plain_s": statistics.median(plain_times),
            "ours_s": statistics.median(ours_times),
            "plain_all": plain_times,
            "ours_all": ours_times,
            "plain_size": plain_file.stat().st_size,
            "ours_size": manifest["size_bytes"],
            "load_s": load_s,
            "verify_s": verify_s,
            "runs": runs,
        }
    finally:
        server.stop()


def table(r: dict, command: str) -> str:
    mb = 1024 * 1024
    ratio = r["ours_s"] / r["plain_s"]
    verdict = "meets" if ratio <= 1.3 else "MISSES"
    return "\n".join(
        [
            "### Backup and verify (`stackmedic-job`) vs plain `mariadb-dump | gzip`",
            "",
            f"Command: `{command}`  ",
            f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node() or 'this machine'}"
            f" ({os.cpu_count()} cores), MariaDB {_server_version()}, {r['runs']} alternating runs each, medians.  ",
            f"Database: {r['rows']:,} visits + owners + pets, {r['data_bytes'] / mb:.0f} MB of table data"
            f" (filled in {r['fill_s']:.0f} s).",
            "",
            "| what | time | compressed size | ratio to plain |",
            "|---|---:|---:|---:|",
            f"| plain `mariadb-dump \\| gzip -6` | {r['plain_s']:.1f} s | {r['plain_size'] / mb:.1f} MB | 1.00 |",
            f"| `stackmedic-job backup` (dump, gzip -6, SHA-256, COUNT(*) of every table, fsync, manifest)"
            f" | {r['ours_s']:.1f} s | {r['ours_size'] / mb:.1f} MB | **{ratio:.2f}** |",
            f"| plain load `gzip -dc \\| mariadb` | {r['load_s']:.1f} s | | 1.00 |",
            f"| `stackmedic-job verify` (checksum, load into a scratch database, checks, drop)"
            f" | {r['verify_s']:.1f} s | | {r['verify_s'] / r['load_s']:.2f} |",
            "",
            f"Target: backup within 1.3x of the plain dump: {verdict} it ({ratio:.2f}x). All runs:"
            f" plain {', '.join(f'{t:.1f}' for t in r['plain_all'])} s;"
            f" ours {', '.join(f'{t:.1f}' for t in r['ours_all'])} s.",
        ]
    )


# -- restore --------------------------------------------------------------------------------


def _job_json(job: list[str], env: dict[str, str], *args: str) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run([*job, *args], env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.decode().splitlines() if ln.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed ({proc.returncode}): {proc.stderr.decode()[-800:]}")
    return elapsed, result


def restore_run(server: MariaDB, workdir: Path, job: list[str], env: dict, runs: int, events: int) -> dict:
    """Restore (scratch + swap) vs a plain load, one table vs whole, PITR replay vs mariadb-binlog | mariadb."""
    root = workdir / "root.cnf"
    root.write_text(
        f"[client]\nuser=root\npassword={server.root_password}\nhost=127.0.0.1\nport={server.port}\n"
    )
    root.chmod(0o600)
    out: dict = {"whole": [], "plain": [], "one": [], "whole_after_drop": []}
    for i in range(runs):
        time.sleep(1.1)  # one backup name per second
        _job_json(job, env, "backup", "--database", DB)
        backup = sorted((workdir / "backups" / DB).glob(f"{DB}-*.sql.gz"))[-1]
        order = ["ours", "plain"] if i % 2 == 0 else ["plain", "ours"]
        for what in order:
            if what == "ours":
                server.execute(f"DROP DATABASE {DB}")
                elapsed, result = _job_json(job, env, "restore", "--database", DB)
                assert result["status"] == "ok", result
                out["whole"].append(elapsed)
            else:
                server.execute("DROP DATABASE IF EXISTS plain_copy", "CREATE DATABASE plain_copy")
                load = f"gzip -dc {backup} | mariadb --defaults-extra-file={root} --binary-mode plain_copy"
                out["plain"].append(timed(["bash", "-o", "pipefail", "-c", load]))
                server.execute("DROP DATABASE plain_copy")
        _drop_rollback_points(server)
        server.execute(f"DROP TABLE {DB}.owners")
        elapsed, result = _job_json(job, env, "restore", "--database", DB)
        assert result["tables"] == ["owners"], result
        out["one"].append(elapsed)
        _drop_rollback_points(server)
        server.execute(f"DROP TABLE {DB}.owners")
        elapsed, result = _job_json(job, env, "restore", "--database", DB, "--whole")
        out["whole_after_drop"].append(elapsed)
        out["safety"] = "safety_dump" in result
        _drop_rollback_points(server)
        for f in (workdir / "backups" / DB / "safety").glob("*"):
            f.unlink()
    out.update(replay_run(server, workdir, job, env, root, events))
    out["rows"] = int(server.execute(f"SELECT COUNT(*) FROM {DB}.visits")[0][0])
    return out


def _drop_rollback_points(server: MariaDB) -> None:
    for (name,) in server.execute(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'stackmedic%'"
    ):
        server.execute("SET FOREIGN_KEY_CHECKS = 0", f"DROP DATABASE `{name}`")


def replay_run(server: MariaDB, workdir: Path, job: list[str], env: dict, root: Path, events: int) -> dict:
    """`events` single-row transactions on owners, replayed by jobs/pitr.py and by mariadb-binlog | mariadb."""
    from stackmedic.jobs import config as jobs_config
    from stackmedic.jobs import pitr
    from stackmedic.jobs.binlog_filter import BinlogFilter
    from stackmedic.jobs.catalog import complete_backups
    from stackmedic.jobs.load import load_file

    time.sleep(1.1)
    _job_json(job, env, "backup", "--database", DB)
    os.environ.update(env)
    config = jobs_config.load(workdir / "jobs.yml")
    database = config.database(DB)
    backup = complete_backups(database.directory, DB)[0]
    start = backup.manifest.binlog
    conn = server.connect(DB)
    with conn.cursor() as cur:
        for n in range(events // 2):
            cur.execute(
                "INSERT INTO owners (first_name, last_name, city) VALUES (%s, 'Replay', 'Madison')",
                (f"r{n}",),
            )
        for n in range(events - events // 2):
            cur.execute("UPDATE owners SET city = %s WHERE id = %s", (f"c{n}", 1 + n))
        cur.execute("SHOW MASTER STATUS")
        end_file, end_pos = cur.fetchone()[:2]
    conn.close()
    copies = {"ours": "stackmedic_restore_load_bench", "peer": "stackmedic_restore_peerbench"}
    for name in copies.values():
        server.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        load_file("mariadb", database.connection, database.restore_user, name, backup.path, tables={"owners"})
    filt = BinlogFilter(DB, copies["ours"], {"owners"}, start.file, end=(end_file, end_pos))
    t0 = time.perf_counter()
    pitr.replay(config, database, start.file, start.position, copies["ours"], filt)
    ours_s = time.perf_counter() - t0
    peer = (
        f"mariadb-binlog --defaults-extra-file={root} --read-from-remote-server --to-last-log"
        f" --start-position={start.position} --stop-position={end_pos} --rewrite-db='{DB}->{copies['peer']}'"
        f" {start.file} | mariadb --defaults-extra-file={root} --binary-mode {copies['peer']}"
    )
    peer_s = timed(["bash", "-o", "pipefail", "-c", peer])
    sums = [server.execute(f"CHECKSUM TABLE {name}.owners")[0][1] for name in copies.values()]
    for name in copies.values():
        server.execute(f"DROP DATABASE {name}")
    return {
        "events": events,
        "replayed": filt.replayed,
        "replay_s": ours_s,
        "peer_replay_s": peer_s,
        "same": sums[0] == sums[1],
    }


def restore_table(r: dict, command: str) -> str:
    med = {k: statistics.median(r[k]) for k in ("whole", "plain", "one", "whole_after_drop")}
    ratio = med["whole"] / med["plain"]
    replay_ratio = r["replay_s"] / r["peer_replay_s"]
    safety = " (with its safety dump of the displaced tables)" if r.get("safety") else ""
    return "\n".join(
        [
            "### Restore (`stackmedic-job restore`: scratch schema, checks, atomic swap) vs plain loads",
            "",
            f"Command: `{command}`  ",
            f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node() or 'this machine'}"
            f" ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end), MariaDB"
            f" {_server_version()} with binary logs (ROW); the backup section's database"
            f" ({r.get('rows', 0):,} visits).  ",
            f"Medians of {len(r['whole'])} alternating runs.",
            "",
            "| what | time | ratio | target |",
            "|---|---:|---:|---|",
            f"| plain `gzip -dc \\| mariadb` into an empty database | {med['plain']:.1f} s | 1.00 | |",
            f"| `restore` of the dropped database (load into `stackmedic_restore_load_*`, binlog scan, checks,"
            f" RENAME) | {med['whole']:.1f} s | **{ratio:.2f}** | <= 1.3x: {'met' if ratio <= 1.3 else 'MISSED'} |",
            f"| `restore` of one dropped table (owners) | {med['one']:.1f} s | {med['one'] / med['plain']:.2f} | |",
            f"| `restore --whole` after the same drop{safety} | {med['whole_after_drop']:.1f} s"
            f" | {med['whole_after_drop'] / med['plain']:.2f} | |",
            f"| point-in-time replay of {r['replayed']:,} events (single-row INSERT/UPDATE on owners),"
            f" jobs/pitr.py: decoded rows as plain SQL | {r['replay_s']:.1f} s | **{replay_ratio:.2f}** |"
            f" <= 1.2x: {'met' if replay_ratio <= 1.2 else 'MISSED'} |",
            f"| the same events, `mariadb-binlog \\| mariadb` as root (BINLOG statements) | {r['peer_replay_s']:.1f} s"
            f" | 1.00 | |",
            "",
            f"Both replays leave the same table (CHECKSUM TABLE equal: {r['same']}). All runs: plain"
            f" {', '.join(f'{t:.1f}' for t in r['plain'])} s; restore {', '.join(f'{t:.1f}' for t in r['whole'])} s;"
            f" one table {', '.join(f'{t:.1f}' for t in r['one'])} s.",
        ]
    )


def _server_version() -> str:
    out = subprocess.run(["mariadbd", "--version"], capture_output=True, text=True, check=False).stdout
    parts = out.split()
    return parts[2] if len(parts) > 2 else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", type=int, default=1_300_000, help="visits rows (~230 bytes of table data each)"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--restore-runs", type=int, default=3, help="0: no restore benchmark")
    parser.add_argument("--events", type=int, default=20000, help="binary log events to replay")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/benchmarks.md")
    args = parser.parse_args(argv)
    command = ".venv/bin/python -m bench.backup_bench" + (
        f" --rows {args.rows}" if args.rows != 1_300_000 else ""
    )
    if args.runs != 5:
        command += f" --runs {args.runs}"
    with tempfile.TemporaryDirectory(prefix="stackmedic-backup-bench-") as tmp:
        result = run(args.rows, args.runs, Path(tmp), args.restore_runs, args.events)
    text = table(result, command) if result["runs"] else ""
    print(text)  # noqa: T201
    if result["restore"]:
        restore_text = restore_table(result["restore"], command)
        print(restore_text)  # noqa: T201
    if not args.no_write:
        if text:
            write_section("backup", text)
        if result["restore"]:
            write_section("restore", restore_text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
