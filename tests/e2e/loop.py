"""The closed loop's moving parts, started for real on 127.0.0.1 around a World (petclinic.py).

- the Jenkins stand-in (in this process), whose jobs are deploy/jenkins/jobs.yaml's: each
  build runs the job's own `stackmedic-job ...` command as a subprocess, with
  STACKMEDIC_JOBS_CONFIG pointing at the World's jobs configuration;
- stackmedic-receiver (subprocess) with examples/receiver.yml's rules, pointed at the stand-in;
- stackmedic-exporter (subprocess) watching the World: its container on the private dockerd,
  its page, its database, its backups;
- Alertmanager and Prometheus (the Debian binaries) with copies of the shipped
  alertmanager.yml, prometheus.yml and rules made by deploy/prometheus/compress.py, so
  nothing here can drift from what ships: only intervals, `for:` and waits are divided by
  `factor`, and targets point at the processes above.

Used by tests/e2e and bench/closed_loop_bench.py.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests
import yaml

from deploy.jenkins import generate as jenkins_dsl
from deploy.prometheus import compress
from harness.jenkins_standin import JenkinsStandIn, Runner, command_runner
from harness.services import Alertmanager, Process, Prometheus, free_port, wait_for
from tests.e2e.petclinic import DATABASE, PROJECT, REQUIRED_TABLES, SERVICE, World, stackmedic_program

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_RECEIVER = REPO / "examples" / "receiver.yml"

HEALING = ("StackAppDown", "StackDatabaseTablesMissing", "StackDatabaseDown")

StartPrometheus = Callable[[str, dict[str, str]], Prometheus]
StartAlertmanager = Callable[[str], Alertmanager]


def standin_jobs(jobs_config: Path) -> tuple[dict[str, Runner], dict[str, list[str]]]:
    """Runners and declared parameters of every job of deploy/jenkins/jobs.yaml.

    The job's `environment` is applied, with STACKMEDIC_JOBS_CONFIG replaced by the test's
    configuration; `stackmedic-job` is this checkout's. Downstream jobs (`on_success`) are
    not chained: the loop never runs the backup jobs through Jenkins.
    """
    spec = jenkins_dsl.load()
    env = {**spec.environment, "STACKMEDIC_JOBS_CONFIG": str(jobs_config)}
    runners: dict[str, Runner] = {}
    declared: dict[str, list[str]] = {}
    for job in spec.jobs.values():
        argv = [stackmedic_program(job.argv[0]), *job.argv[1:]]
        runners[job.name] = command_runner(
            argv, timeout=job.timeout_minutes * 60, env=env, unstable_exit_codes=job.unstable_exit_codes
        )
        declared[job.name] = [*job.parameters, *job.string_parameters]
    return runners, declared


def exporter_config(world: World) -> dict[str, Any]:
    """The exporter's view of the World, named as docs/design.md asks (checks after the service)."""
    return {
        # the compressed scrape timeout is short (4s / factor): keep little of it as margin
        "scrape": {"timeout": "4s", "timeout_margin": "100ms"},
        "containers": {
            "docker_url": world.docker.base_url,
            "services": [{"name": SERVICE, "compose_project": PROJECT}],
        },
        "http": [{"name": SERVICE, "url": world.url, "keyword": "Welcome", "timeout": "2s"}],
        "mysql": [
            {
                "name": "stack",
                "host": "127.0.0.1",
                "port": world.mariadb.port,
                "user": world.exporter_user,
                "password_file": str(world.exporter_password_file),
                "timeout": "2s",
                "tables": {DATABASE: REQUIRED_TABLES},
            }
        ],
        "backups": {"directory": str(world.backup_dir), "databases": [DATABASE]},
    }


def receiver_config(
    base: Path, jenkins: JenkinsStandIn, factor: float, rule_breakers: Mapping[str, dict] | None = None
) -> dict[str, Any]:
    """examples/receiver.yml with its secrets in files, its store in `base`, Jenkins = the stand-in.

    The rules and breaker are the example's, but for `rule_breakers` ({rule: overrides}).
    Jenkins' poll interval and the dispatcher's backoff are divided by `factor` like the alerting timings.
    """
    example = yaml.safe_load(EXAMPLE_RECEIVER.read_text())
    token_file = base / "receiver.token"
    token_file.write_text(secrets.token_urlsafe(24))
    (base / "jenkins.token").write_text(jenkins.token)
    j = {k: v for k, v in example["jenkins"].items() if not k.startswith("api_token")}
    j.update(url=jenkins.url, user=jenkins.user, api_token_file=str(base / "jenkins.token"))
    j["poll_interval"] = compress.scale_duration(str(example["jenkins"]["poll_interval"]), factor)
    rules = []
    for rule in example["rules"]:
        overrides = (rule_breakers or {}).get(rule["name"])
        rules.append({**rule, "breaker": {**rule.get("breaker", {}), **overrides}} if overrides else rule)
    return {
        "auth": {"bearer_token_file": str(token_file)},
        "store": {"type": "sqlite", "path": str(base / "receiver.sqlite")},
        "jenkins": j,
        # the dispatcher's retries shrink with Alertmanager's repeats: a Jenkins outage lasts as
        # many repeats here as it would as shipped
        "dispatcher": {
            **example["dispatcher"],
            **{
                k: compress.scale_duration(str(example["dispatcher"][k]), factor)
                for k in ("backoff_initial", "backoff_max")
            },
        },
        "breaker": example["breaker"],
        "rules": rules,
    }


class LoopStack:
    """Stand-in, receiver, exporter, Alertmanager and Prometheus around `world`; stop() ends them all."""

    def __init__(
        self,
        world: World,
        base: Path,
        factor: float,
        start_prometheus: StartPrometheus,
        start_alertmanager: StartAlertmanager,
        rule_breakers: Mapping[str, dict] | None = None,
    ):
        self.world = world
        self.base = base
        self.factor = factor
        self._start_prometheus = start_prometheus
        self._start_alertmanager = start_alertmanager
        self.rule_breakers = rule_breakers
        self.jenkins: JenkinsStandIn | None = None
        self.processes: list[Process] = []
        self.prometheus: Prometheus | None = None
        self.alertmanager: Alertmanager | None = None
        self.receiver_url = self.exporter_url = ""

    # life cycle

    def start(self) -> LoopStack:
        self.base.mkdir(parents=True, exist_ok=True)
        runners, declared = standin_jobs(self.world.jobs_config)
        self.jenkins = JenkinsStandIn(jobs=runners, params=declared).start()
        config = receiver_config(self.base, self.jenkins, self.factor, self.rule_breakers)
        self.receiver_url = self._serve("stackmedic-receiver", config)
        self.exporter_url = self._serve("stackmedic-exporter", exporter_config(self.world))
        am_config = compress.compress_alertmanager_config(
            compress.load_yaml(compress.ALERTMANAGER_CONFIG),
            self.factor,
            receiver_url=f"{self.receiver_url}/api/v1/alerts",
            credentials_file=str(self.base / "receiver.token"),
        )
        self.alertmanager = self._start_alertmanager(compress.dump_yaml(am_config))
        hostport = {url: url.removeprefix("http://") for url in (self.receiver_url, self.exporter_url)}
        prom_config = compress.compress_prometheus_config(
            compress.load_yaml(compress.PROMETHEUS_CONFIG),
            self.factor,
            targets={
                "stackmedic-exporter": [hostport[self.exporter_url]],
                "stackmedic-receiver": [hostport[self.receiver_url]],
                "alertmanager": [self.alertmanager.url.removeprefix("http://")],
                "prometheus": [],  # its port is picked when it starts: no self-scrape
            },
            alertmanagers=[self.alertmanager.url.removeprefix("http://")],
            rule_files=["stackmedic-*.yml"],
        )
        rules = {
            name: compress.dump_yaml(compress.compress_rules(doc, self.factor))
            for name, doc in compress.load_shipped_rules().items()
        }
        self.prometheus = self._start_prometheus(compress.dump_yaml(prom_config), rules)
        wait_for(self.prometheus.targets_up, 30, "Prometheus' targets to be up", interval=0.2)
        return self

    def _serve(self, program: str, config: dict[str, Any]) -> str:
        name = program.removeprefix("stackmedic-")
        path = self.base / f"{name}.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        argv = [
            stackmedic_program(program),
            f"--config.file={path}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        process = Process(argv, self.base / f"{name}.log")
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            process.check_alive(program)
            return requests.get(f"{url}/-/ready" if name == "receiver" else url, timeout=2).ok

        wait_for(ready, 30, f"{program} to answer", interval=0.1)
        return url

    def stop(self) -> None:
        for service in (self.prometheus, self.alertmanager):
            if service:
                service.stop()
        for process in reversed(self.processes):
            process.stop()
        if self.jenkins:
            self.jenkins.stop()

    def logs(self) -> str:
        """The tail of every log, for a failing test's report."""
        out = []
        for process in self.processes:
            with contextlib.suppress(OSError):
                out.append(f"--- {process.log}\n" + "\n".join(process.log.read_text().splitlines()[-40:]))
        return "\n".join(out)

    def wait_quiet(self, timeout: float = 30) -> None:
        """Everything up and seen so by Prometheus, and no healing alert pending or firing."""
        assert self.prometheus
        prom = self.prometheus
        up = [
            f'stackmedic_http_up{{target="{SERVICE}"}} == 1',
            f'stackmedic_container_running{{compose_service="{SERVICE}"}} == 1',
            "stackmedic_mysql_up == 1",
            f'min(stackmedic_mysql_table_has_rows{{database="{DATABASE}"}}) == 1',
            "stackmedic_receiver_breaker_open == 0 or absent(stackmedic_receiver_breaker_open)",
        ]

        def quiet() -> bool:
            return all(prom.query(q) for q in up) and not any(self.prometheus_alerts(a) for a in HEALING)

        wait_for(quiet, timeout, "the stack to be up and quiet", interval=0.2)

    # what each part says

    def prometheus_alerts(self, name: str, state: str | None = None) -> list[dict[str, Any]]:
        """Prometheus' alerts named `name` (pending or firing, or only `state`)."""
        assert self.prometheus
        body = requests.get(f"{self.prometheus.url}/api/v1/alerts", timeout=5).json()
        found = [a for a in body["data"]["alerts"] if a["labels"]["alertname"] == name]
        return [a for a in found if state is None or a["state"] == state]

    def alertmanager_alerts(self, name: str) -> list[dict[str, Any]]:
        """Alertmanager's active alerts named `name` (with `receivers` and `status`)."""
        assert self.alertmanager
        r = requests.get(
            f"{self.alertmanager.url}/api/v2/alerts", params={"filter": f'alertname="{name}"'}, timeout=5
        )
        r.raise_for_status()
        return r.json()

    def decisions(self, alertname: str | None = None) -> list[dict[str, Any]]:
        """The receiver's audit, oldest first (GET /api/v1/actions)."""
        r = requests.get(f"{self.receiver_url}/api/v1/actions", params={"limit": 1000}, timeout=5)
        r.raise_for_status()
        rows = list(reversed(r.json()["actions"]))
        return [a for a in rows if alertname is None or a["alertname"] == alertname]

    def builds(self) -> list[tuple[str, dict[str, str], str | None]]:
        """Every build the stand-in made, in order: (job, parameters, result)."""
        assert self.jenkins
        return [(b.job, dict(b.params), b.result) for b in self.jenkins.builds()]

    def never_seen(self, alertname: str, window: str = "10m") -> bool:
        """Prometheus never had `alertname` pending or firing within `window`."""
        assert self.prometheus
        return not self.prometheus.query(f'count_over_time(ALERTS{{alertname="{alertname}"}}[{window}])')
