"""Takeover time: how long a surviving replica takes to resume a SIGKILLed replica's action.

    .venv/bin/python -m bench.takeover_bench              # 5 runs of each case, default settings
    .venv/bin/python -m bench.takeover_bench --runs 3 --set dispatcher.heartbeat_timeout=4s

Two real receiver processes (`python -m stackmedic.receiver`), replicas `a` and `b`, share a
private MariaDB store and the Jenkins stand-in, with the default dispatcher and Jenkins
settings unless `--set` says otherwise. An alert is posted to `a`; once `a` holds the action
in the wanted state it is SIGKILLed (no goodbye: its heartbeat just stops). Measured from the
kill to `b`'s first request to Jenkins for the action, and to the build's end, in two cases:

- `queued`: Jenkins queued the build and `a` was following the queue item (held queue);
- `mid-post`: `a` died while its POST was in Jenkins' hands (the answer never came), so `b`
  must first let the request's grace pass (`jenkins.timeout`) and look the build up by its
  token before it may do anything.

Each run also checks the stand-in's own log: exactly one POST, one build.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from harness.jenkins_standin import JenkinsStandIn
from harness.receiver_process import ReceiverProcess
from harness.services import MariaDB, wait_for

TOKEN = "bench-token"  # noqa: S105 - a throwaway secret for a local run
JOB_PARAMS = {"stackmedic-restart": ["SERVICE", "STACKMEDIC_ACTION_ID"]}
RULE = {
    "name": "restart-app",
    "match": {"remediation": "restart"},
    "job": "stackmedic-restart",
    "target": "compose_service",
    "params": {"SERVICE": "{compose_service}"},
    "allow": {"compose_service": "^[a-z][a-z0-9_-]{0,62}$"},
}


def alert_body(service: str) -> dict:
    alert = {
        "status": "firing",
        "labels": {"alertname": "StackAppDown", "remediation": "restart", "compose_service": service},
        "annotations": {},
        "startsAt": "2026-01-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": f"fp-{service}",
    }
    return {
        "version": "4",
        "groupKey": "{}:{}",
        "status": "firing",
        "receiver": "stackmedic",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    }


def set_key(config: dict, assignment: str) -> None:
    """`section.key=value` (value parsed as YAML) into the configuration."""
    path, _, value = assignment.partition("=")
    *sections, key = path.split(".")
    node = config
    for s in sections:
        node = node.setdefault(s, {})
    node[key] = yaml.safe_load(value)


def replica(run_dir: Path, name: str, config: dict[str, Any], env: dict[str, str]) -> ReceiverProcess:
    """A receiver process named `name` (its replica name too), ready."""
    config = {**config, "store": {**config["store"], "replica": name}}
    return ReceiverProcess(run_dir, config, env, TOKEN, name=name, log_level="info").start(timeout=30)


def one_run(case: str, mariadb: MariaDB, tmp: Path, overrides: list[str], run: int) -> dict[str, Any]:
    database = f"takeover_{case.replace('-', '_')}_{run}"
    mariadb.execute(f"DROP DATABASE IF EXISTS {database}", f"CREATE DATABASE {database}")
    standin = JenkinsStandIn(jobs={"stackmedic-restart": None}, params=JOB_PARAMS).start()
    config: dict[str, Any] = {
        "auth": {"bearer_token_env": "BENCH_TOKEN"},
        "store": {
            "type": "mysql",
            "host": mariadb.host,
            "port": mariadb.port,
            "user": "root",
            "password_env": "BENCH_MYSQL_PASSWORD",
            "database": database,
        },
        "jenkins": {"url": standin.url, "user": standin.user, "api_token_env": "BENCH_JENKINS_TOKEN"},
        "rules": [RULE],
    }
    for assignment in overrides:
        set_key(config, assignment)
    env = {
        "BENCH_TOKEN": TOKEN,
        "BENCH_JENKINS_TOKEN": standin.token,
        "BENCH_MYSQL_PASSWORD": MariaDB.root_password,
    }
    run_dir = tmp / f"{case}-{run}"
    run_dir.mkdir()
    a = b = None
    try:
        if case == "queued":
            standin.hold_queue()
        else:
            standin.hang("buildWithParameters", after=True)
        a = replica(run_dir, "a", config, env)
        b = replica(run_dir, "b", config, env)
        a.post(alert_body("petclinic"), timeout=10).raise_for_status()
        if case == "queued":
            wait_for(
                lambda: any("/queue/item/" in c.path for c in standin.calls), 20, "a following the queue"
            )
        else:
            wait_for(standin.posts, 20, "a's POST")
        [(owner,)] = mariadb.execute(f"SELECT owner FROM {database}.actions WHERE token IS NOT NULL")
        assert owner == "a", owner
        killed = time.monotonic()
        a.kill()
        seen = len(standin.calls)
        if case == "queued":
            standin.hold_queue(False)
        else:
            standin.release()
        first = wait_for(lambda: standin.calls[seen:], 180, "b's first request to Jenkins")[0]
        wait_for(lambda: standin.finished(), 180, "the build to finish")
        wait_for(
            lambda: (
                mariadb.execute(f"SELECT state FROM {database}.actions WHERE token IS NOT NULL")
                == [("done",)]
            ),
            180,
            "b to record the result",
        )
        done = time.monotonic()
        [(owner,)] = mariadb.execute(f"SELECT owner FROM {database}.actions WHERE token IS NOT NULL")
        return {
            "takeover": first.at - killed,
            "done": done - killed,
            "first": f"{first.method} {first.path}",
            "posts": len(standin.posts()),
            "builds": len(standin.builds()),
            "owner": owner,
        }
    finally:
        for receiver in (a, b):
            if receiver is not None:
                receiver.stop()
        standin.stop()
        mariadb.execute(f"DROP DATABASE IF EXISTS {database}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--case", choices=["queued", "mid-post"], action="append")
    parser.add_argument(
        "--set", action="append", default=[], help="section.key=value, e.g. dispatcher.lease=30s"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="takeover-") as tmp_name:
        tmp = Path(tmp_name)
        mariadb = MariaDB(tmp / "mariadb").start()
        try:
            for case in args.case or ["queued", "mid-post"]:
                runs = [one_run(case, mariadb, tmp, args.set, i) for i in range(args.runs)]
                for r in runs:
                    print(
                        f"{case}: takeover {r['takeover']:.1f}s, done {r['done']:.1f}s, first {r['first']},"
                        f" posts {r['posts']}, builds {r['builds']}, owner {r['owner']}"
                    )
                takeovers = [r["takeover"] for r in runs]
                print(
                    f"{case}: takeover median {statistics.median(takeovers):.1f}s"
                    f" (min {min(takeovers):.1f}s, max {max(takeovers):.1f}s) over {len(runs)} runs;"
                    f" one POST and one build in every run: {all(r['posts'] == r['builds'] == 1 for r in runs)}"
                )
        finally:
            mariadb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
