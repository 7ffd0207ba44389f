"""Benchmark: stackmedic-exporter against the exporters a user would deploy instead.

One run starts real local targets (a private MariaDB, a private dockerd with two busybox
httpd containers, HTTP servers, backups on disk), then stackmedic-exporter and, on the
same targets, node_exporter, process-exporter, mysqld_exporter and blackbox_exporter
(Debian packages). All are scraped in turns, the way Prometheus scrapes them (new
connection, its Accept headers, gzip, the scrape-timeout header), at least 200 times
each. Then two scenarios of stackmedic alone: one hung target, and 200 HTTP targets that
answer in 5 ms. The table goes to docs/benchmarks.md between the exporter markers.

    .venv/bin/python -m bench.exporter_bench [--scrapes 200] [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from bench.report import DOC, write_section
from harness.services import DockerEngine, MariaDB, Process, free_port, require_binary, wait_for
from tests.exporter.http_servers import HungServer, TargetServer

REPO = Path(__file__).resolve().parent.parent
ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
MONITOR_USER, MONITOR_PW = "stackmedic_ro", "bench-ro-pw"
PEER_USER, PEER_PW = "exporter", "bench-exporter-pw"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Exporter:
    """A running exporter process and its scrape results."""

    name: str
    process: Process
    port: int
    path: str = "/metrics"
    does: str = ""
    latencies: list[float] = field(default_factory=list)
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    switches_start: int = 0
    switches_end: int = 0
    rss_kib: int = 0
    hwm_kib: int = 0
    series: int = 0

    def scrape(self, timeout_header: float = 10.0) -> tuple[float, bytes]:
        """One scrape as Prometheus does it; (seconds, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {
            "Accept": ACCEPT,
            "Accept-Encoding": "gzip",
            "User-Agent": "Prometheus/2.42.0",
            "X-Prometheus-Scrape-Timeout-Seconds": str(timeout_header),
        }
        start = time.perf_counter()
        conn.request("GET", self.path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        took = time.perf_counter() - start
        conn.close()
        if resp.status != 200:
            raise RuntimeError(f"{self.name}: HTTP {resp.status}")
        if resp.getheader("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return took, body

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def switches(self) -> int:
        """Context switches of all the process's threads so far (voluntary or not)."""
        total = 0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that just ended
                for line in (task / "status").read_text().splitlines():
                    if "ctxt_switches:" in line:
                        total += int(line.split()[1])
        return total

    def memory(self) -> None:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        self.rss_kib = int(values["VmRSS"].split()[0])
        self.hwm_kib = int(values["VmHWM"].split()[0])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class Bench:
    """Everything the run starts, stopped by PID at the end."""

    def __init__(self, work: Path, scrapes: int):
        self.work = work
        self.scrapes = scrapes
        self.processes: list[Process] = []
        self.mariadb: MariaDB | None = None
        self.docker: DockerEngine | None = None
        self.servers: list = []

    # --- targets -------------------------------------------------------------

    def start_targets(self) -> dict:
        print("starting MariaDB, dockerd, HTTP targets", file=sys.stderr)
        self.mariadb = MariaDB(self.work / "mariadb").start()
        self._seed_databases()
        self.docker = DockerEngine(Path(tempfile.mkdtemp(prefix="smb-", dir="/tmp"))).start()
        www = self.work / "www"
        www.mkdir()
        (www / "index.html").write_text("<h2>Welcome</h2><p>PetClinic</p>\n")
        ports = {"petclinic": free_port(), "wordpress": free_port()}
        for service, port in ports.items():
            self.docker.run_http(f"bench-{service}", port, www, compose_service=service)
        for port in ports.values():
            wait_for(lambda p=port: _http_ok(p), 30, f"container httpd on {port}")
        web, hung = TargetServer(), HungServer()
        self.servers += [web, hung]
        backups = self.work / "backups"
        _write_backups(backups, "petclinic", 30)
        return {"app_ports": ports, "web": web, "hung": hung, "backups": backups}

    def _seed_databases(self) -> None:
        db = self.mariadb
        assert db is not None
        db.execute(
            "CREATE DATABASE IF NOT EXISTS petclinic",
            "CREATE DATABASE IF NOT EXISTS wordpress",
            *(
                f"CREATE TABLE IF NOT EXISTS petclinic.{t} (id INT PRIMARY KEY, v VARCHAR(30))"
                for t in PETCLINIC
            ),
            *(
                f"CREATE TABLE IF NOT EXISTS wordpress.{t} (id INT PRIMARY KEY, v VARCHAR(30))"
                for t in WORDPRESS
            ),
            "INSERT IGNORE INTO petclinic.owners VALUES (1, 'Franklin'), (2, 'Davis')",
            "INSERT IGNORE INTO wordpress.wp_options VALUES (1, 'siteurl')",
        )
        db.create_user(MONITOR_USER, MONITOR_PW, ["SELECT ON petclinic.*", "SELECT ON wordpress.*"])
        db.create_user(PEER_USER, PEER_PW, ["PROCESS, REPLICATION CLIENT, SLAVE MONITOR, SELECT ON *.*"])

    # --- exporters -----------------------------------------------------------

    def start(
        self, name: str, argv: list[str], port: int, path: str = "/metrics", does: str = "", env=None
    ) -> Exporter:
        proc = Process(argv, self.work / f"{name}.log", env=env, cwd=REPO)
        self.processes.append(proc)
        exporter = Exporter(name, proc, port, path, does)

        def ready() -> bool:
            proc.check_alive(name)
            exporter.scrape()
            return True

        wait_for(ready, 30, f"{name} to answer", interval=0.1)
        return exporter

    def stackmedic(self, name: str, config: dict, does: str = "") -> Exporter:
        path = self.work / f"{name}.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        env = {**os.environ, "BENCH_MYSQL_PW": MONITOR_PW}
        argv = [
            sys.executable,
            "-m",
            "stackmedic.exporter",
            f"--config.file={path}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        return self.start(name, argv, port, does=does, env=env)

    def peers(self, t: dict) -> list[Exporter]:
        db = self.mariadb
        assert db is not None
        out = []
        port = free_port()
        node = require_binary("prometheus-node-exporter")
        out.append(
            self.start(
                "node_exporter",
                [node, f"--web.listen-address=127.0.0.1:{port}"],
                port,
                does="system (default collectors)",
            )
        )

        port = free_port()
        pe_cfg = self.work / "process-exporter.yml"
        pe_cfg.write_text(
            yaml.safe_dump(
                {
                    "process_names": [
                        {"name": "mysqld", "comm": ["mariadbd", "mysqld"]},
                        {"name": "httpd", "comm": ["busybox", "httpd"]},
                        {"name": "dockerd", "comm": ["dockerd"]},
                    ]
                }
            )
        )
        pe = require_binary("prometheus-process-exporter")
        argv = [pe, f"-web.listen-address=127.0.0.1:{port}", f"-config.path={pe_cfg}"]
        out.append(self.start("process-exporter", argv, port, does="3 process groups"))

        port = free_port()
        cnf = self.work / "my.cnf"
        cnf.write_text(f"[client]\nuser={PEER_USER}\npassword={PEER_PW}\nhost=127.0.0.1\nport={db.port}\n")
        cnf.chmod(0o600)
        me = require_binary("prometheus-mysqld-exporter")
        argv = [me, f"--web.listen-address=127.0.0.1:{port}", f"--config.my-cnf={cnf}"]
        out.append(self.start("mysqld_exporter", argv, port, does="MariaDB (default collectors)"))

        port = free_port()
        bb_cfg = self.work / "blackbox.yml"
        module = {"prober": "http", "timeout": "5s", "http": {"fail_if_body_not_matches_regexp": ["Welcome"]}}
        bb_cfg.write_text(yaml.safe_dump({"modules": {"http_keyword": module}}))
        bb = require_binary("prometheus-blackbox-exporter")
        target = f"http://127.0.0.1:{t['app_ports']['petclinic']}/"
        argv = [bb, f"--web.listen-address=127.0.0.1:{port}", f"--config.file={bb_cfg}"]
        path = f"/probe?module=http_keyword&target={target}"
        out.append(self.start("blackbox_exporter", argv, port, path=path, does="1 HTTP probe with keyword"))
        return out

    def stop(self) -> None:
        for proc in self.processes:
            proc.stop()
        for server in self.servers:
            server.stop()
        if self.docker:
            self.docker.stop()
            # dockerd leaves its network namespace mounted under its exec root
            netns = self.docker.base_dir / "exec" / "netns" / "default"
            if os.path.ismount(netns):
                subprocess.run(["umount", str(netns)], check=False)
            shutil.rmtree(self.docker.base_dir, ignore_errors=True)
        if self.mariadb:
            self.mariadb.stop()


STACKMEDIC_DOES = (
    "system, 3 process groups, 4 compose services, docker df (cached), 2 HTTP checks, "
    "MariaDB (13 tables + 1 query), 3 ports, 30 backups"
)
PETCLINIC = ["owners", "pets", "visits", "vets", "specialties", "vet_specialties", "types"]
WORDPRESS = ["wp_posts", "wp_options", "wp_users", "wp_postmeta", "wp_comments", "wp_terms"]


def stack_config(bench: Bench, t: dict) -> dict:
    """The seed stack (examples/seed-stack.yml), pointed at the local targets."""
    db, docker = bench.mariadb, bench.docker
    assert db is not None and docker is not None
    apps = t["app_ports"]
    return {
        "system": {"filesystems": ["/"]},
        "docker": {"url": docker.base_url},
        "containers": {"services": [{"name": n} for n in ("petclinic", "wordpress", "mysql", "jenkins")]},
        "docker_space": {},
        "processes": {
            "groups": [
                {"group": "mysqld", "name": "^(mysqld|mariadbd)$"},
                {"group": "httpd", "name": "^(busybox|httpd)$"},
                {"group": "dockerd", "name": "^dockerd$"},
            ]
        },
        "http": [
            {"name": "petclinic", "url": f"http://127.0.0.1:{apps['petclinic']}/", "keyword": "Welcome"},
            {"name": "wordpress", "url": f"http://127.0.0.1:{apps['wordpress']}/"},
        ],
        "mysql": [
            {
                "name": "stack",
                "host": "127.0.0.1",
                "port": db.port,
                "user": MONITOR_USER,
                "password_env": "BENCH_MYSQL_PW",
                "tables": {"petclinic": PETCLINIC, "wordpress": WORDPRESS},
                "queries": [
                    {
                        "name": "owner_franklin",
                        "database": "petclinic",
                        "sql": "SELECT 1 FROM owners WHERE v = 'Franklin'",
                    }
                ],
            }
        ],
        "ports": {
            "targets": [
                {"name": "mysql", "port": db.port, "program": "mariadbd|mysqld"},
                {"name": "petclinic", "port": apps["petclinic"]},
                {"name": "wordpress", "port": apps["wordpress"]},
            ]
        },
        "backups": {"directory": str(t["backups"]), "databases": ["petclinic", "wordpress"]},
    }


def _http_ok(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status == 200
    finally:
        conn.close()


def _write_backups(folder: Path, db: str, count: int) -> None:
    d = folder / db
    d.mkdir(parents=True)
    for i in range(count):
        stamp = f"202611{1 + i // 24:02d}T{i % 24:02d}0000Z"
        name = f"{db}-{stamp}.sql.gz"
        (d / name).write_bytes(b"\x1f\x8b" + b"x" * 1000)
        created = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").strftime("%Y-%m-%dT%H:%M:%SZ")
        manifest = {
            "format": 1,
            "database": db,
            "file": name,
            "created": created,
            "size_bytes": 1002,
            "sha256": "0" * 64,
            "tables": {"owners": 2},
            "verified": {"at": created, "ok": True, "reason": ""},
        }
        (d / f"{name}.json").write_text(json.dumps(manifest))


def count_series(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def run_side_by_side(exporters: list[Exporter], scrapes: int) -> None:
    """Scrape all exporters in turns: the machine's noise falls on all of them alike."""
    for e in exporters:
        for _ in range(10):  # warm-up: first connections, caches, the CPU ratio's first window
            e.scrape()
        e.cpu_start = e.cpu_seconds()
        e.switches_start = e.switches()
    for i in range(scrapes):
        for e in exporters:
            took, body = e.scrape()
            e.latencies.append(took)
            if i == 0:
                e.series = count_series(body)
    for e in exporters:
        e.cpu_end = e.cpu_seconds()
        e.switches_end = e.switches()
        e.memory()


def hung_scenario(bench: Bench, hung: HungServer, runs: int = 5) -> tuple[float, float]:
    """(check timeout, slowest scrape) with one target that accepts and never answers."""
    timeout = 1.0
    cfg = {"system": {}, "http": [{"name": "hung", "url": hung.url(), "timeout": f"{timeout}s"}]}
    e = bench.stackmedic("stackmedic-hung", cfg)
    worst = 0.0
    for _ in range(runs):
        time.sleep(timeout + 0.5)  # the previous scrape's hung check has ended: not still_running
        took, body = e.scrape(timeout_header=10)
        assert b'stackmedic_check_failure_reason{check="http/hung",reason="timeout"} 1.0' in body, body[:2000]
        worst = max(worst, took)
    return timeout, worst


def many_targets_scenario(
    bench: Bench, web: TargetServer, n: int = 200, runs: int = 20
) -> tuple[float, float]:
    """(median, worst) scrape of `n` HTTP targets each answering in 5 ms."""
    cfg = {
        "http": [
            {"name": f"t{i:03d}", "url": web.url(f"/slow5ms?i={i}"), "keyword": "Welcome"} for i in range(n)
        ]
    }
    e = bench.stackmedic("stackmedic-200", cfg)
    for _ in range(3):
        e.scrape()
    times = []
    for _ in range(runs):
        took, body = e.scrape()
        up = [line for line in body.splitlines() if line.startswith(b"stackmedic_http_up{")]
        assert len(up) == n and all(line.endswith(b" 1.0") for line in up), "a target was not up"
        times.append(took)
    return statistics.median(times), max(times)


def table(exporters: list[Exporter], scrapes: int) -> list[str]:
    ours = exporters[0]
    peers = exporters[1:]
    slowest = max(statistics.median(p.latencies) for p in peers)
    rows = [
        "| exporter | work in one scrape | series | median | p99 | CPU / scrape | thread switches / scrape "
        "| RSS (peak) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for e in exporters:
        cpu = (e.cpu_end - e.cpu_start) / scrapes * 1000
        rows.append(
            f"| {e.name} | {e.does} | {e.series} | {statistics.median(e.latencies) * 1000:.1f} ms "
            f"| {percentile(e.latencies, 0.99) * 1000:.1f} ms | {cpu:.2f} ms "
            f"| {(e.switches_end - e.switches_start) / scrapes:.0f} "
            f"| {e.rss_kib / 1024:.1f} MiB ({e.hwm_kib / 1024:.1f}) |"
        )
    ratio = statistics.median(ours.latencies) / slowest
    rows.append("")
    rows.append(
        f"stackmedic median / slowest peer's median: **{ratio:.2f}** "
        f"(target <= 1); stackmedic median {statistics.median(ours.latencies) * 1000:.1f} ms (target <= 15 ms); "
        f"RSS {ours.rss_kib / 1024:.1f} MiB (target <= 40 MiB)."
    )
    node = next((p for p in peers if p.name == "node_exporter"), None)
    if node is not None:
        rows.append("")
        rows.append(against_node(ours, node, scrapes))
    return rows


def against_node(ours: Exporter, node: Exporter, scrapes: int) -> str:
    """The full stack against node_exporter doing the host alone (issue 9's speed targets)."""

    def cpu(e: Exporter) -> float:
        return (e.cpu_end - e.cpu_start) / scrapes

    median = statistics.median(ours.latencies) / statistics.median(node.latencies)
    return (
        f"stackmedic's full scrape against node_exporter's host alone, same run: median ratio "
        f"**{median:.2f}** (target <= 1), CPU per scrape ratio **{cpu(ours) / cpu(node):.2f}** "
        f"(target <= 1), RSS **{ours.rss_kib / 1024:.1f} MiB** (target <= 40 MiB; node_exporter "
        f"{node.rss_kib / 1024:.1f} MiB)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument(
        "--no-write", action="store_true", help="print the section, do not touch docs/benchmarks.md"
    )
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="stackmedic-bench-"))
    bench = Bench(work, args.scrapes)
    try:
        t = bench.start_targets()
        ours = bench.stackmedic("stackmedic", stack_config(bench, t), does=STACKMEDIC_DOES)
        exporters = [ours, *bench.peers(t)]
        print(f"scraping {len(exporters)} exporters {args.scrapes} times each", file=sys.stderr)
        run_side_by_side(exporters, args.scrapes)
        hung_timeout, hung_worst = hung_scenario(bench, t["hung"])
        many_median, many_worst = many_targets_scenario(bench, t["web"])
    finally:
        bench.stop()
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"Command: `.venv/bin/python -m bench.exporter_bench --scrapes {args.scrapes}` "
        f"({datetime.now(UTC).strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"Python {platform.python_version()}; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after: the machine is shared, compare the ratios).",
        "",
        f"Each exporter scraped {args.scrapes} times in turns, as Prometheus does (new connection, "
        "OpenMetrics Accept, gzip, `X-Prometheus-Scrape-Timeout-Seconds: 10`), after 10 warm-up scrapes. "
        "Targets: a private MariaDB 10.11, a private dockerd with two busybox httpd containers, "
        "HTTP servers on 127.0.0.1. Latency is the client's wall time per scrape; CPU is the "
        "exporter's own user+system time over the run divided by the scrapes, and thread switches "
        "the context switches of all its threads (`/proc/PID/task/*/status`), likewise.",
        "",
        *table(exporters, args.scrapes),
        "",
        "| scenario | result | target |",
        "|---|---:|---|",
        f"| one target that accepts and never answers (check timeout {hung_timeout:.0f} s), slowest of 5 scrapes "
        f"| {hung_worst * 1000:.0f} ms | <= {(hung_timeout + 0.1) * 1000:.0f} ms |",
        f"| 200 HTTP targets answering in 5 ms each, median (slowest) of 20 scrapes "
        f"| {many_median * 1000:.0f} ms ({many_worst * 1000:.0f} ms) | < 1000 ms |",
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section("exporter", "\n".join(lines))
        print(f"written to {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
