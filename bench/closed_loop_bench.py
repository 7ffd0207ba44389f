"""Benchmark: from `docker kill petclinic` to the Jenkins build being triggered, and to the
page answering again, with the shipped timing profile and the time-compressed one.

The whole loop runs for real, as in tests/e2e (whose helpers this reuses): a private dockerd
with the petclinic container, a private MariaDB, stackmedic-exporter, Prometheus and
Alertmanager with the shipped files (divided by --factor by deploy/prometheus/compress.py;
factor 1 is the shipped file itself), stackmedic-receiver, and the Jenkins stand-in running
`stackmedic-job restart`.

Next to it, in the same run, the pipeline's own floor: the time Prometheus' schedule alone
imposes. From Prometheus' own samples of that run, it is the kill until the first
evaluation at or after the first exporter scrape that started after the kill, plus `for:`
(at most `for:` + one scrape interval + one evaluation interval). What stackmedic adds is
the rest, split in:

- exporter: the firing evaluation minus that floor (a scrape that was slow, or that missed
  the death, costs a whole evaluation interval), plus the duration of the scrape that saw it;
- Alertmanager: firing evaluation to the receiver's decision (not ours: shown for the picture);
- receiver: its decision to the POST that triggers the Jenkins build.

Target: exporter + receiver add at most 1 s to the floor. Each kill is made at a random
moment of the scrape interval. Results go to docs/benchmarks.md between the closed-loop
markers.

    .venv/bin/python -m bench.closed_loop_bench [--runs 5] [--factors 1 5] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.report import write_section
from deploy.prometheus import compress
from harness.services import Alertmanager, DockerEngine, MariaDB, Prometheus, wait_for
from tests.e2e.loop import LoopStack
from tests.e2e.petclinic import SERVICE, World, prepare

ALERT = "StackAppDown"
# repeated kills of one target: no cooldown, no limit (the breaker's decision is still made)
RELAXED = {"restart-app": {"cooldown": "0s", "max_actions": 0, "max_ineffective": 0}}


@dataclass
class Timing:
    """One profile's schedule, from the (compressed) shipped files."""

    factor: float
    scrape: float  # the exporter's scrape interval
    interval: float  # StackAppDown's group interval
    for_: float

    @classmethod
    def of(cls, factor: float) -> Timing:
        prom = compress.compress_prometheus_config(compress.load_yaml(compress.PROMETHEUS_CONFIG), factor)
        job = next(j for j in prom["scrape_configs"] if j["job_name"] == "stackmedic-exporter")
        for doc in compress.load_shipped_rules().values():
            for group in compress.compress_rules(doc, factor)["groups"]:
                for rule in group["rules"]:
                    if rule.get("alert") == ALERT:
                        return cls(
                            factor,
                            compress.parse_duration(job["scrape_interval"]) / 1000,
                            compress.parse_duration(group["interval"]) / 1000,
                            compress.parse_duration(rule["for"]) / 1000,
                        )
        raise LookupError(ALERT)

    @property
    def bound(self) -> float:
        return self.for_ + self.scrape + self.interval


@dataclass
class Run:
    post: float  # kill -> the Jenkins POST
    app: float  # kill -> the page answers again
    floor: float  # kill -> the firing evaluation an instant exporter would allow
    fired: float  # kill -> the firing evaluation
    scrape: float  # duration of the scrape that saw the death
    decided: float  # kill -> the receiver's decision (webhook received)

    @property
    def exporter(self) -> float:
        return self.fired - self.floor + self.scrape

    @property
    def receiver(self) -> float:
        return self.post - self.decided

    @property
    def alertmanager(self) -> float:
        return self.decided - self.fired


def samples(prom: Prometheus, selector: str, since: float) -> list[tuple[float, float]]:
    """Raw (timestamp, value) samples of one series since `since` (a range selector, no evaluation)."""
    result = prom.query(f"{selector}[10m]")
    if len(result) != 1:
        raise RuntimeError(f"{selector}: expected one series, got {len(result)}")
    return [(float(t), float(v)) for t, v in result[0]["values"] if float(t) > since]


def first_eval_at_or_after(evals: list[float], interval: float, t: float) -> float:
    """The group's evaluation time at or after `t`, from known evaluation times on its grid."""
    ref = evals[0]
    steps = -((ref - t) // interval)  # ceil((t - ref) / interval), also for t before ref
    return ref + steps * interval


class AnswerWatch(threading.Thread):
    """Polls the page every 20 ms from the kill until it answers; `at` is when (monotonic)."""

    def __init__(self, world: World):
        super().__init__(daemon=True)
        self.world, self.at = world, None
        self.down = threading.Event()

    def run(self) -> None:
        while not self.world.answers():
            self.down.set()
            time.sleep(0.02)
        self.at = time.monotonic()


def one_run(loop: LoopStack, timing: Timing, number: int) -> Run:
    assert loop.jenkins and loop.prometheus
    prom = loop.prometheus
    loop.wait_quiet(timeout=30 + 4 * timing.bound)
    posts = len(loop.jenkins.posts())
    time.sleep(random.uniform(0, timing.scrape))  # noqa: S311 - a random phase, not a secret
    kill_wall, kill_mono = time.time(), time.monotonic()
    loop.world.docker.client.containers.get(SERVICE).kill()
    watch = AnswerWatch(loop.world)
    watch.start()
    deadline = 60 + 3 * timing.bound
    wait_for(lambda: len(loop.jenkins.posts()) > posts, deadline, "the Jenkins POST", interval=0.01)
    post = loop.jenkins.posts()[posts].at - kill_mono
    watch.join(deadline)
    if watch.at is None:
        raise TimeoutError("petclinic did not answer again")

    # the incident is over on every side before the next kill: build followed, alert resolved
    def over() -> bool:
        decisions = loop.decisions(ALERT)
        followed = all(d["build"]["result"] for d in decisions if d["decision"] == "triggered")
        return followed and sum(d["decision"] == "resolved" for d in decisions) >= number

    wait_for(over, deadline, "the incident to be over", interval=0.1)
    http = samples(prom, f'stackmedic_http_up{{target="{SERVICE}"}}', kill_wall)
    scrapes = [t for t, _ in http]
    seen = next(t for t, v in http if v == 0)
    durations = dict(samples(prom, 'scrape_duration_seconds{job="stackmedic-exporter"}', kill_wall))
    pending = samples(prom, f'ALERTS{{alertname="{ALERT}",alertstate="pending"}}', kill_wall)
    firing = samples(prom, f'ALERTS{{alertname="{ALERT}",alertstate="firing"}}', kill_wall)
    evals = [pending[0][0], firing[0][0]]
    ideal_pending = first_eval_at_or_after(evals, timing.interval, scrapes[0])
    triggered = next(d for d in reversed(loop.decisions(ALERT)) if d["decision"] == "triggered")
    decided = datetime.fromisoformat(triggered["at"].replace("Z", "+00:00")).timestamp()
    return Run(
        post=post,
        app=watch.at - kill_mono,
        floor=ideal_pending + timing.for_ - kill_wall,
        fired=firing[0][0] - kill_wall,
        scrape=durations[seen],
        decided=decided - kill_wall,
    )


def bench_profile(world: World, base: Path, factor: float, runs: int) -> tuple[Timing, list[Run]]:
    timing = Timing.of(factor)
    started: list = []

    def start_prometheus(config: str, rules: dict[str, str]) -> Prometheus:
        started.append(Prometheus(base / "prometheus", config, rules).start())
        return started[-1]

    def start_alertmanager(config: str) -> Alertmanager:
        started.append(Alertmanager(base / "alertmanager", config).start())
        return started[-1]

    loop = LoopStack(world, base, factor, start_prometheus, start_alertmanager, rule_breakers=RELAXED)
    results = []
    try:
        loop.start()
        for n in range(1, runs + 1):
            r = one_run(loop, timing, n)
            results.append(r)
            print(
                f"factor {factor:g} run {n}: post {r.post:.2f}s app {r.app:.2f}s floor {r.floor:.2f}s "
                f"fired {r.fired:.2f}s exporter +{r.exporter:.3f}s alertmanager +{r.alertmanager:.3f}s "
                f"receiver +{r.receiver:.3f}s",
                flush=True,
            )
        builds = loop.builds()
        assert [(job, p["SERVICE"], result) for job, p, result in builds] == [
            ("stackmedic-restart", SERVICE, "SUCCESS")
        ] * runs, builds
    finally:
        loop.stop()
    return timing, results


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], digits: int = 1) -> str:
    return f"{median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def table(profiles: list[tuple[Timing, list[Run]]], runs: int) -> str:
    lines = [
        "Closed loop: `docker kill petclinic` until the Jenkins build is triggered (the stand-in "
        "records the POST) and until the page answers again; the whole loop real "
        "(bench/closed_loop_bench.py, tests/e2e). Median (min-max) of "
        f"{runs} kills per profile, each at a random moment of the scrape interval.",
        "",
        "| profile | scrape / eval / `for:` | kill to build triggered | kill to page answers | "
        "pipeline floor | floor bound | exporter adds | Alertmanager | receiver adds | "
        "exporter + receiver |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for timing, rs in profiles:
        name = "shipped" if timing.factor == 1 else f"compressed x{timing.factor:g}"
        added = [r.exporter + r.receiver for r in rs]
        lines.append(
            f"| {name} | {timing.scrape:g} s / {timing.interval:g} s / {timing.for_:g} s "
            f"| {spread([r.post for r in rs])} s | {spread([r.app for r in rs])} s "
            f"| {spread([r.floor for r in rs])} s | {timing.bound:g} s "
            f"| {spread([r.exporter for r in rs], 3)} s | {spread([r.alertmanager for r in rs], 3)} s "
            f"| {spread([r.receiver for r in rs], 3)} s | {median(added):.3f} s (max {max(added):.3f}) |"
        )
    worst = max(r.exporter + r.receiver for _, rs in profiles for r in rs)
    verdict = "met" if worst <= 1.0 else "NOT met"
    lines += [
        "",
        "- *pipeline floor*: from Prometheus' own samples of the same run, the kill until the first "
        "rule evaluation at or after the first exporter scrape that started after the kill, plus "
        "`for:`: what Prometheus' schedule imposes with an instant exporter and an instant webhook. "
        "*Floor bound*: `for:` + one scrape + one evaluation interval, its worst case.",
        "- *exporter adds*: the firing evaluation minus that floor (a missed or late scrape costs a "
        "whole evaluation interval), plus the duration of the scrape that saw the death. "
        "*Alertmanager*: firing evaluation to the receiver's decision (Prometheus' notifier, "
        "`group_wait: 0s`, the webhook). *Receiver adds*: its decision to the POST to Jenkins.",
        f"- Target, exporter + receiver at most 1 s over the floor: **{verdict}** (worst run "
        f"{worst:.3f} s). The shipped profile's budget is 30 s from death to build "
        "(docs/alerting.md).",
        "- *Kill to page answers* adds the build itself: the stand-in's queue (50 ms), starting "
        "`stackmedic-job restart` and its `docker restart`; the job's `settle` comes after.",
        f"- Measured on {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}. The receiver's breaker has no "
        "cooldown or limit here so that every kill is healed; its decision is still made.",
        "",
        "```sh",
        f".venv/bin/python -m bench.closed_loop_bench --runs {runs} --factors "
        + " ".join(f"{t.factor:g}" for t, _ in profiles),
        "```",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="kills per profile (default 5)")
    parser.add_argument("--factors", type=float, nargs="+", default=[1, 5], help="1 = shipped")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/benchmarks.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="closed-loop-bench-", ignore_cleanup_errors=True) as tmp:
        base = Path(tmp)
        mariadb = docker = None
        try:
            mariadb = MariaDB(base / "mariadb").start()
            docker = DockerEngine(base / "dockerd").start()
            world = prepare(mariadb, docker, base / "world")
            world.start_container()
            wait_for(world.answers, 20, "petclinic to answer")
            profiles = [bench_profile(world, base / f"x{f:g}", f, args.runs) for f in args.factors]
        finally:
            if docker:
                docker.stop()
            if mariadb:
                mariadb.stop()
    text = table(profiles, args.runs)
    print(text)
    if not args.no_write:
        write_section("closed-loop", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
