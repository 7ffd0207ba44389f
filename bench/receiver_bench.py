"""Receiver benchmark: webhook acknowledgement and throughput, side by side with Debian's `webhook`.

    .venv/bin/python -m bench.receiver_bench            # rewrites the receiver section of docs/benchmarks.md
    .venv/bin/python -m bench.receiver_bench --no-write

Both servers get the same Alertmanager payloads on 127.0.0.1, in the same run:

- stackmedic-receiver (stackmedic.httpserver, SQLite store in WAL mode with synchronous=FULL, every
  decision written before the answer) with the seed rules, calling the Jenkins stand-in;
- `webhook` (/usr/bin/webhook) with one hook that checks the same bearer token and runs
  /bin/true.

Phases: acknowledgement latency at a fixed 200 requests/s; sustained throughput with a
fixed number of concurrent clients; for the receiver, the time from a webhook's arrival to
the Jenkins POST at the stand-in. Afterwards the receiver's store is checked: exactly one
decision per request (nothing lost, nothing doubled) and exactly one build per target.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from bench.report import write_section
from harness.jenkins_standin import JenkinsStandIn
from harness.services import Process, free_port, wait_for

REPO = Path(__file__).resolve().parent.parent

TOKEN = "bench-token"  # noqa: S105 - a throwaway secret for a local run
RATE = 200
RATE_SECONDS = 15
CONCURRENCY = 16
THROUGHPUT_REQUESTS = 6000
ARRIVAL_SAMPLES = 100
TARGETS_PER_PHASE = 20


def body(phase: str, i: int) -> bytes:
    """One firing alert, a new incident each time (unique fingerprint), for one of 20 targets."""
    target = f"svc-{phase}-{i % TARGETS_PER_PHASE}"
    alert = {
        "status": "firing",
        "labels": {"alertname": "StackAppDown", "remediation": "restart", "compose_service": target},
        "annotations": {"summary": f"{target} is down"},
        "startsAt": f"2026-01-01T10:{i // 60000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": f"bench-{phase}-{i}",
    }
    return json.dumps(
        {
            "version": "4",
            "groupKey": '{}:{alertname="StackAppDown"}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "stackmedic",
            "groupLabels": {"alertname": "StackAppDown"},
            "commonLabels": alert["labels"],
            "commonAnnotations": alert["annotations"],
            "externalURL": "http://alertmanager:9093",
            "alerts": [alert],
        }
    ).encode()


class Target:
    """A server under test: host, port, path, headers."""

    def __init__(self, name: str, port: int, path: str):
        self.name, self.port, self.path = name, port, path
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}

    def client(self) -> Callable[[bytes], int]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

        def send(data: bytes) -> int:
            nonlocal conn
            try:
                conn.request("POST", self.path, data, self.headers)
                resp = conn.getresponse()
                resp.read()
                return resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                return 0

        return send


def fixed_rate(target: Target, phase: str, rate: int, seconds: float) -> dict:
    """Open loop: requests are started at `rate` per second; latency is send to answer."""
    total = int(rate * seconds)
    jobs: queue.Queue = queue.Queue()
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        send = target.client()
        while (item := jobs.get()) is not None:
            data = item
            t0 = time.perf_counter()
            status = send(data)
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                statuses.append(status)

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(32)]
    for w in workers:
        w.start()
    start = time.perf_counter()
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        jobs.put(body(phase, i))
    for _ in workers:
        jobs.put(None)
    for w in workers:
        w.join()
    latencies.sort()
    return {
        "requests": total,
        "ok": sum(1 for s in statuses if 200 <= s < 300),
        "median_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def throughput(target: Target, phase: str, concurrency: int, total: int) -> dict:
    """Closed loop: `concurrency` clients send `total` requests as fast as answers come."""
    counter = iter(range(total))
    lock = threading.Lock()
    statuses: list[int] = []

    def worker() -> None:
        send = target.client()
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            status = send(body(phase, i))
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {
        "requests": total,
        "ok": sum(1 for s in statuses if 200 <= s < 300),
        "per_second": total / elapsed,
    }


def arrival_to_post(target: Target, standin: JenkinsStandIn, samples: int) -> dict:
    """New incidents one at a time: client send -> the stand-in sees the POST (same monotonic clock)."""
    send = target.client()
    delays = []
    for i in range(samples):
        service = f"svc-arrival-{i}"
        data = json.loads(body("arrival", i))
        data["alerts"][0]["labels"]["compose_service"] = service
        t0 = time.monotonic()
        assert send(json.dumps(data).encode()) == 200
        call = wait_for(
            lambda s=service: next((c for c in standin.posts() if c.form.get("SERVICE") == s), None),
            10,
            f"the POST for {service}",
            interval=0.001,
        )
        delays.append(call.at - t0)
        time.sleep(0.02)
    delays.sort()
    return {
        "median_ms": statistics.median(delays) * 1000,
        "p99_ms": delays[int(len(delays) * 0.99) - 1] * 1000,
    }


def children(pid: int) -> list[str]:
    """Child processes of `pid` (webhook's running commands)."""
    found: list[str] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += (task / "children").read_text().split()
        except OSError:
            continue
    return found


def start_receiver(tmp: Path, standin: JenkinsStandIn) -> tuple[Process, Target, Path]:
    port = free_port()
    store = tmp / "receiver.sqlite"
    config = {
        "auth": {"bearer_token_env": "BENCH_TOKEN"},
        "store": {"type": "sqlite", "path": str(store), "synchronous": "full"},
        "jenkins": {
            "url": standin.url,
            "user": standin.user,
            "api_token_env": "BENCH_JENKINS_TOKEN",
            "poll_interval": "50ms",
            "max_concurrent_requests": 4,
        },
        "web": {"threads": 4},
        "breaker": {"cooldown": "1h", "max_actions": 100, "window": "1h", "max_ineffective": 0},
        "rules": yaml.safe_load((REPO / "examples/receiver.yml").read_text())["rules"],
    }
    (tmp / "receiver.yml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "BENCH_TOKEN": TOKEN, "BENCH_JENKINS_TOKEN": standin.token, "PYTHONPATH": str(REPO)}
    argv = [
        sys.executable,
        "-m",
        "stackmedic.receiver",
        f"--config.file={tmp / 'receiver.yml'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    proc = Process(argv, tmp / "receiver.log", env=env, cwd=REPO)
    target = Target("stackmedic-receiver", port, "/api/v1/alerts")
    wait_for(lambda: target.client()(b"{}") == 400, 30, "the receiver")
    return proc, target, store


def start_webhook(tmp: Path) -> tuple[Process, Target]:
    binary = shutil.which("webhook") or "/usr/bin/webhook"
    port = free_port()
    hooks = [
        {
            "id": "alerts",
            "execute-command": "/bin/true",
            "command-working-directory": str(tmp),
            "response-message": "ok",
            "trigger-rule": {
                "match": {
                    "type": "value",
                    "value": f"Bearer {TOKEN}",
                    "parameter": {"source": "header", "name": "Authorization"},
                }
            },
        }
    ]
    (tmp / "hooks.json").write_text(json.dumps(hooks))
    proc = Process(
        [binary, "-hooks", str(tmp / "hooks.json"), "-ip", "127.0.0.1", "-port", str(port)],
        tmp / "webhook.log",
    )
    target = Target("webhook", port, "/hooks/alerts")
    wait_for(lambda: target.client()(b"{}") == 200, 30, "webhook")
    return proc, target


def check_store(store: Path, phases: dict[str, int]) -> dict:
    """Every request of every phase left exactly one decision."""
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        found = {}
        for phase, sent in phases.items():
            rows = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT fingerprint) FROM actions WHERE fingerprint LIKE ?",
                (f"bench-{phase}-%",),
            ).fetchone()
            found[phase] = {"sent": sent, "decisions": rows[0], "distinct": rows[1]}
        triggered = conn.execute("SELECT COUNT(*) FROM actions WHERE token IS NOT NULL").fetchone()[0]
    finally:
        conn.close()
    return {"phases": found, "triggered": triggered}


def render(results: dict, command: str) -> str:
    r, w = results["receiver"], results["webhook"]
    check = results["store"]
    lost = sum(p["sent"] - p["distinct"] for p in check["phases"].values())
    doubled = sum(p["decisions"] - p["distinct"] for p in check["phases"].values())
    lines = [
        f"Command: `{command}` ({results['when']}, {os.cpu_count()} cores, load average "
        f"{results['load']:.1f} at the start: the machine is shared, p99 moves from run to run). Every request is a new",
        "incident (unique fingerprint) for one of 20 targets per phase; the receiver stores each",
        "decision (SQLite, WAL, synchronous=FULL) before answering; `webhook` checks the same",
        "bearer token and runs /bin/true.",
        "",
        "| measure | stackmedic-receiver | webhook 2.8 | receiver / webhook | target |",
        "|---|---|---|---|---|",
        f"| ack latency median at {RATE} req/s | {r['rate']['median_ms']:.1f} ms | {w['rate']['median_ms']:.1f} ms "
        f"| {r['rate']['median_ms'] / w['rate']['median_ms']:.1f}x | |",
        f"| ack latency p99 at {RATE} req/s | {r['rate']['p99_ms']:.1f} ms | {w['rate']['p99_ms']:.1f} ms "
        f"| {r['rate']['p99_ms'] / w['rate']['p99_ms']:.1f}x | <= 20 ms |",
        f"| throughput, {CONCURRENCY} concurrent clients | {r['tput']['per_second']:.0f} req/s "
        f"| {w['tput']['per_second']:.0f} req/s | {r['tput']['per_second'] / w['tput']['per_second']:.2f}x "
        "| >= 500 req/s |",
        f"| answered 2xx | {r['rate']['ok'] + r['tput']['ok']} / {r['rate']['requests'] + r['tput']['requests']} "
        f"| {w['rate']['ok'] + w['tput']['ok']} / {w['rate']['requests'] + w['tput']['requests']} | | all |",
        f"| arrival to Jenkins POST, median (p99) | {r['arrival']['median_ms']:.1f} ms "
        f"({r['arrival']['p99_ms']:.1f} ms) | n/a | | <= 50 ms median |",
        "",
        f"Store afterwards: {lost} requests lost, {doubled} decisions doubled; "
        f"{check['triggered']} builds triggered for {results['targets']} targets, "
        f"{results['builds']} builds seen by the Jenkins stand-in.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/benchmarks.md")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="receiver-bench-"))
    standin = JenkinsStandIn(
        jobs={"stackmedic-restart": None, "stackmedic-restore": None},
        queue_delay=0.0,
        build_duration=0.0,
        executors=8,
    ).start()
    receiver_proc, receiver, store = start_receiver(tmp, standin)
    webhook_proc, webhook = start_webhook(tmp)
    results: dict = {
        "receiver": {},
        "webhook": {},
        "when": time.strftime("%Y-%m-%d"),
        "load": os.getloadavg()[0],
    }
    try:
        settle = lambda: wait_for(lambda: not children(webhook_proc.pid), 120, "webhook's commands", 0.05)  # noqa: E731
        for target, key in ((webhook, "webhook"), (receiver, "receiver")):
            fixed_rate(target, f"warm{key}", 100, 2)
            settle()
        for target, key in ((receiver, "receiver"), (webhook, "webhook")):
            results[key]["rate"] = fixed_rate(target, "rate", RATE, RATE_SECONDS)
            settle()  # webhook answers first and runs its command after: let it finish
            print(key, "rate", results[key]["rate"], flush=True)
        for target, key in ((receiver, "receiver"), (webhook, "webhook")):
            results[key]["tput"] = throughput(target, "tput", CONCURRENCY, THROUGHPUT_REQUESTS)
            settle()
            print(key, "throughput", results[key]["tput"], flush=True)
        results["receiver"]["arrival"] = arrival_to_post(receiver, standin, ARRIVAL_SAMPLES)
        print("receiver arrival->POST", results["receiver"]["arrival"], flush=True)
        phases = {
            "warmreceiver": 200,
            "rate": RATE * RATE_SECONDS,
            "tput": THROUGHPUT_REQUESTS,
            "arrival": ARRIVAL_SAMPLES,
        }
        results["targets"] = 3 * TARGETS_PER_PHASE + ARRIVAL_SAMPLES
        wait_for(lambda: len(standin.finished()) >= results["targets"], 120, "the builds", interval=0.2)
        results["builds"] = len(standin.builds())
        results["store"] = check_store(store, phases)
    finally:
        receiver_proc.stop()
        webhook_proc.stop()
        standin.stop()
    text = render(results, ".venv/bin/python -m bench.receiver_bench")
    print(text)
    if not args.no_write:
        write_section("receiver", text)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
