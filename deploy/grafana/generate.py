"""Writes the two stackmedic dashboards, dashboards/stack-health.json and dashboards/remediation.json.

    python -m deploy.grafana.generate          # rewrite them (from the checkout's root)
    python -m deploy.grafana.generate --check  # exit 1 when the committed files differ

The JSON is what Grafana provisions; this script is how it is kept consistent (panel ids,
layout, the data-source variable on every query, runbook links). Edit here, regenerate,
commit both. Metric names and labels are docs/design.md's; alert names and thresholds are
deploy/prometheus/rules' (tests/deploy_stack/test_dashboards.py checks both).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from deploy.grafana.panels import (
    BLUE,
    GREEN,
    ORANGE,
    RED,
    UNKNOWN,
    UP_DOWN,
    annotation,
    dashboard,
    datasource_variable,
    query_variable,
    row,
    runbook_links,
    runbooks_variable,
    stat,
    state_timeline,
    status_grid,
    table,
    target,
    thresholds,
    timeseries,
)

HERE = Path(__file__).resolve().parent
RUNBOOKS = "https://github.com/stackmedic/stackmedic/blob/main/docs/runbooks"
I = 'instance=~"$instance"'  # noqa: E741 - the exporter instance filter, in every selector

# The alert thresholds drawn on the resource panels (deploy/prometheus/rules/stackmedic-resources.yml)
CPU_WARNING, CPU_CRITICAL = 0.85, 0.95
PROCESS_MEMORY_WARNING = 0.5
FS_AVAIL_WARNING, FS_AVAIL_CRITICAL = 0.15, 0.05
BACKUP_MAX_AGE = 26 * 3600


def unknown_when_stale(expr: str, metric: str, extra: str = "") -> str:
    """`expr`, or -1 for each series of `metric{extra}` seen in the last hour but not `expr` now.

    A series goes stale when the exporter cannot be scraped: its cell turns grey
    ("unknown") instead of disappearing.
    """
    return f"({expr})\nor\n(last_over_time({metric}{{{I}{extra}}}[1h]) * 0 - 1)"


def links_to_dashboards() -> list[dict]:
    return [
        {
            "type": "dashboards",
            "tags": ["stackmedic"],
            "asDropdown": False,
            "includeVars": False,
            "keepTime": True,
            "title": "stackmedic",
            "icon": "external link",
            "targetBlank": False,
        }
    ]


def remediation_annotation() -> dict:
    return annotation(
        "Remediations",
        # a marker over the minute after each build finished (the first one of a rule too,
        # which changes() would miss: its series appears with the timestamp already set)
        "time() - max by (rule, target, jenkins_job, result) "
        "(stackmedic_receiver_last_action_timestamp_seconds) < 60",
        "{{rule}}: {{jenkins_job}} {{result}}",
        "#FF9830",
    )


def status_panels() -> list[dict]:
    """The Active Dashboard's grid: a cell per app, service, process group, port, table."""
    apps = status_grid(
        "Apps",
        "HTTP check of each app: status allowed and keyword found. Grey: not measured now.",
        unknown_when_stale(f"stackmedic_http_up{{{I}}}", "stackmedic_http_up"),
        "{{target}}",
        UP_DOWN,
        runbook_links("StackAppDown", "StackHttpTargetDown"),
        w=8,
    )
    containers = status_grid(
        "Container services",
        "Running containers against the configured minimum; UNHEALTHY when one fails its "
        "Docker healthcheck. Grey while the Docker engine does not answer.",
        unknown_when_stale(
            f"clamp_min(\n  (stackmedic_container_running{{{I}}} >= bool stackmedic_container_expected{{{I}}})\n"
            f'  - 0.5 * (sum without (health) (stackmedic_container_health{{{I}, health="unhealthy"}}) > bool 0),\n'
            f"  0\n) and on (job, instance) (stackmedic_docker_up{{{I}}} == 1)",
            "stackmedic_container_expected",
        ),
        "{{compose_service}}",
        {"1": ("UP", GREEN), "0.5": ("UNHEALTHY", ORANGE), "0": ("DOWN", RED), **UNKNOWN},
        runbook_links("StackAppDown", "StackContainerDown", "StackDockerDown"),
        w=8,
    )
    processes = status_grid(
        "Process groups",
        "At least one process of the group runs (the old instanceCount). Grey while the "
        "process check itself fails.",
        unknown_when_stale(
            f"(stackmedic_process_instances{{{I}}} > bool 0)\n"
            f'  and on (job, instance) (stackmedic_check_success{{{I}, check="processes"}} == 1)',
            "stackmedic_process_instances",
        ),
        "{{group}}",
        UP_DOWN,
        runbook_links("StackProcessNotRunning", "StackCheckFailing"),
        w=8,
    )
    ports = status_grid(
        "Ports",
        "A connection succeeds; WRONG PROGRAM when another program than the configured one "
        "listens. Grey while the port check itself fails.",
        unknown_when_stale(
            f"(stackmedic_tcp_port_open{{{I}}} * (1 + stackmedic_tcp_port_expected_program{{{I}}}) / 2)\n"
            f'  and on (job, instance) (stackmedic_check_success{{{I}, check="ports"}} == 1)',
            "stackmedic_tcp_port_open",
        ),
        "{{name}} :{{port}}",
        {"1": ("OPEN", GREEN), "0.5": ("WRONG PROGRAM", ORANGE), "0": ("CLOSED", RED), **UNKNOWN},
        runbook_links("StackPortClosed", "StackPortWrongProgram"),
    )
    databases = status_grid(
        "Database servers",
        "The server answers a query. LOGIN REFUSED: it answers, but refuses the exporter "
        "(its password, grants or TLS: stackmedic_mysql_failure_reason auth, tls, query); "
        "the apps may be fine, but the tables are not watched.",
        unknown_when_stale(
            f"(\n  max by (job, instance, server) (\n"
            f'    stackmedic_mysql_failure_reason{{{I}, reason=~"auth|tls|query"}}\n'
            f"  ) == 1\n) * 0.5\nor\nstackmedic_mysql_up{{{I}}}",
            "stackmedic_mysql_up",
        ),
        "{{server}}",
        {"0.5": ("LOGIN REFUSED", ORANGE), **UP_DOWN},
        runbook_links("StackDatabaseDown", "StackDatabaseLoginFailed"),
        w=4,
    )
    docker = status_grid(
        "Docker engine",
        "The exporter lists containers from the Docker engine (through the read-only proxy).",
        unknown_when_stale(f"stackmedic_docker_up{{{I}}}", "stackmedic_docker_up"),
        "{{instance}}",
        UP_DOWN,
        runbook_links("StackDockerDown"),
        w=4,
    )
    monitoring = status_grid(
        "Monitoring",
        "Prometheus scrapes the exporter, the receiver, Alertmanager and itself.",
        'up{job=~"stackmedic-exporter|stackmedic-receiver|alertmanager|prometheus"}',
        "{{job}}",
        UP_DOWN,
        runbook_links("StackExporterDown", "StackReceiverDown", "StackReceiverReplicaDown"),
        w=4,
    )
    tables = status_grid(
        "Tables of $database",
        "Each required table: OK (present, has rows), EMPTY, MISSING; grey (UNKNOWN) while "
        "the database server is down, as the Active Dashboard showed it.",
        unknown_when_stale(
            f'(stackmedic_mysql_table_present{{{I}, database=~"$database"}}'
            f' + stackmedic_mysql_table_has_rows{{{I}, database=~"$database"}})\n'
            f"  and on (job, instance, server) (stackmedic_mysql_up{{{I}}} == 1)",
            "stackmedic_mysql_table_present",
            ', database=~"$database"',
        ),
        "{{table}}",
        {"2": ("OK", GREEN), "1": ("EMPTY", RED), "0": ("MISSING", RED), **UNKNOWN},
        runbook_links("StackDatabaseTablesMissing", "StackDatabaseDown"),
        w=12,
    )
    tables.update(repeat="database", repeatDirection="h", maxPerRow=2)
    checks = status_grid(
        "Checks",
        "Each check of the exporter ran to completion in this scrape (stackmedic_check_success). "
        "A failing check reads 0 for everything it measures.",
        f"stackmedic_check_success{{{I}}}",
        "{{check}}",
        {"1": ("OK", GREEN), "0": ("FAILING", ORANGE)},
        runbook_links("StackCheckFailing"),
        w=12,
    )
    return [row("Status"), apps, containers, processes, ports, databases, docker, monitoring, tables, checks]


def cpu_busy(window: str) -> str:
    """Busy share of all CPUs over `window`, as StackCpuHigh computes it (counters, so the
    same whichever Prometheus server asks)."""
    idle = f'stackmedic_cpu_seconds_total{{mode=~"idle|iowait",{I}}}'
    return (
        f"1 - sum without (mode) (rate({idle}[{window}]))"
        f" / sum without (mode) (rate(stackmedic_cpu_seconds_total{{{I}}}[{window}]))"
    )


def resource_panels() -> list[dict]:
    """CPU, memory, disks, with the alert thresholds drawn."""
    cpu = timeseries(
        "CPU busy",
        f"Host CPU utilisation. StackCpuHigh fires on the 5-minute average: warning above "
        f"{CPU_WARNING:.0%} for 10 min, critical above {CPU_CRITICAL:.0%} for 5 min (the lines).",
        [
            target(cpu_busy("$__rate_interval"), "{{instance}}"),
            target(cpu_busy("5m"), "{{instance}} 5 min average"),
        ],
        "percentunit",
        thresholds(GREEN, (CPU_WARNING, ORANGE), (CPU_CRITICAL, RED)),
        runbook_links("StackCpuHigh"),
        minimum=0,
        maximum=1,
    )
    memory = timeseries(
        "Memory used",
        "Share of the host's physical memory in use (1 - available/total), and of swap.",
        [
            target(
                f"1 - stackmedic_memory_available_bytes{{{I}}} / stackmedic_memory_total_bytes{{{I}}}",
                "{{instance}} memory",
            ),
            target(
                f"stackmedic_swap_used_bytes{{{I}}} / (stackmedic_swap_total_bytes{{{I}}} > 0)",
                "{{instance}} swap",
            ),
        ],
        "percentunit",
        minimum=0,
        maximum=1,
    )
    group_memory = timeseries(
        "Memory per process group",
        f"Resident memory of each process group as a share of the host's. StackProcessMemoryHigh "
        f"warns above {PROCESS_MEMORY_WARNING:.0%} for 10 min (the line).",
        [
            target(
                f"stackmedic_process_resident_memory_bytes{{{I}}}\n"
                f"  / on (job, instance) group_left () stackmedic_memory_total_bytes{{{I}}}",
                "{{group}}",
            )
        ],
        "percentunit",
        thresholds(GREEN, (PROCESS_MEMORY_WARNING, ORANGE)),
        runbook_links("StackProcessMemoryHigh"),
        minimum=0,
    )
    group_cpu = timeseries(
        "CPU per process group (cores)",
        "CPU seconds per second used by the processes of each group.",
        [target(f"rate(stackmedic_process_cpu_seconds_total{{{I}}}[$__rate_interval])", "{{group}}")],
        "short",
        minimum=0,
    )
    filesystems = timeseries(
        "File system space available",
        f"Share of each watched file system still free. Warning below {FS_AVAIL_WARNING:.0%} for "
        f"10 min, critical below {FS_AVAIL_CRITICAL:.0%} for 5 min (StackFilesystemSpaceLow, "
        "StackDockerSpaceLow for Docker's data root).",
        [
            target(
                f"stackmedic_filesystem_avail_bytes{{{I}}} / stackmedic_filesystem_size_bytes{{{I}}}",
                "{{mountpoint}}",
            )
        ],
        "percentunit",
        thresholds(RED, (FS_AVAIL_CRITICAL, ORANGE), (FS_AVAIL_WARNING, "transparent")),
        runbook_links("StackFilesystemSpaceLow", "StackDockerSpaceLow"),
        minimum=0,
        maximum=1,
    )
    load = timeseries(
        "Load average",
        "1, 5 and 15 minute load averages of the host.",
        [
            target(f"stackmedic_load1{{{I}}}", "1 min"),
            target(f"stackmedic_load5{{{I}}}", "5 min"),
            target(f"stackmedic_load15{{{I}}}", "15 min"),
        ],
        "short",
        minimum=0,
    )
    docker_space = stat(
        "Docker space",
        "Docker's volumes and images (`docker system df`, cached by the exporter).",
        [
            target(f"stackmedic_docker_volumes_bytes{{{I}}}", "volumes", instant=True),
            target(f"stackmedic_docker_images_bytes{{{I}}}", "images", instant=True),
        ],
        "bytes",
        thresholds(BLUE),
        runbook_links("StackDockerSpaceLow"),
    )
    restarts = stat(
        "Container restarts",
        "Docker's restart count of each service's containers (restart policy and the automation).",
        [target(f"stackmedic_container_restarts{{{I}}}", "{{compose_service}}", instant=True)],
        "none",
        thresholds(GREEN, (1, ORANGE)),
    )
    http_latency = timeseries(
        "HTTP response time",
        "Time each app's HTTP check took (a check that times out shows its timeout).",
        [target(f"stackmedic_http_duration_seconds{{{I}}}", "{{target}}")],
        "s",
        minimum=0,
    )
    check_duration = timeseries(
        "Check duration",
        "Time each exporter check took in a scrape.",
        [target(f"stackmedic_check_duration_seconds{{{I}}}", "{{check}}")],
        "s",
        minimum=0,
    )
    return [
        row("Resources"),
        cpu,
        memory,
        group_memory,
        group_cpu,
        filesystems,
        load,
        docker_space,
        restarts,
        row("Latency"),
        http_latency,
        check_duration,
    ]


def stack_health() -> dict:
    return dashboard(
        "stackmedic-stack-health",
        "Stack health",
        "Every app, container service, process group, port and table of the stack, green or "
        "red (grey when not known), with the host's resources and the alert thresholds. Each "
        "cell links to the runbook of its alert.",
        ["stackmedic"],
        status_panels() + resource_panels(),
        [
            datasource_variable(),
            query_variable("instance", "Exporter", "label_values(stackmedic_build_info, instance)"),
            query_variable(
                "database",
                "Database",
                'label_values(stackmedic_mysql_table_present{instance=~"$instance"}, database)',
            ),
            runbooks_variable(RUNBOOKS),
        ],
        [remediation_annotation()],
        links_to_dashboards(),
    )


def now_panels() -> list[dict]:
    firing = stat(
        "Alerts firing",
        "Every alert firing in Prometheus now.",
        [target('count(ALERTS{alertstate="firing"}) or vector(0)', "firing", instant=True)],
        "none",
        thresholds(GREEN, (1, RED)),
        w=3,
    )
    healing = stat(
        "Healing alerts firing",
        "Firing alerts that carry a `remediation` label: the automation acts on them.",
        [target('count(ALERTS{alertstate="firing", remediation!=""}) or vector(0)', "healing", instant=True)],
        "none",
        thresholds(GREEN, (1, ORANGE)),
        runbook_links("StackAppDown", "StackDatabaseTablesMissing"),
        w=3,
    )
    escalated = stat(
        "Escalated",
        "Open incidents the automation gave up on (breaker opened or attempts spent while "
        "the alert still fires): a person was paged.",
        [
            target(
                "count(max by (rule, target) (stackmedic_receiver_escalated) > 0) or vector(0)",
                "escalated",
                instant=True,
            )
        ],
        "none",
        thresholds(GREEN, (1, RED)),
        runbook_links("StackRemediationEscalated"),
        w=3,
    )
    breakers_open = stat(
        "Breakers open",
        "Targets on which the automation gave up (open or half-open breaker).",
        [
            target(
                "count(max by (rule, target) (stackmedic_receiver_breaker_open) > 0) or vector(0)",
                "open",
                instant=True,
            )
        ],
        "none",
        thresholds(GREEN, (1, RED)),
        runbook_links("StackRemediationBreakerOpen"),
        w=3,
    )
    paused = status_grid(
        "Automation",
        "PAUSED when the receiver's pause API holds a target (`*` is everything). An "
        "Alertmanager silence pauses without showing here: see the firing alerts.",
        "max by (target) (stackmedic_receiver_paused)",
        "{{target}}",
        {"1": ("PAUSED", ORANGE), "0": ("ACTIVE", GREEN), **UNKNOWN},
        [],
        w=6,
        h=4,
    )
    queue = stat(
        "Queue depth",
        "Accepted alerts waiting for the receiver's worker.",
        [target("max(stackmedic_receiver_queue_depth)", "queued", instant=True)],
        "none",
        thresholds(GREEN, (5, ORANGE)),
        w=3,
    )
    receiver = stat(
        "Receiver",
        "Prometheus scrapes each stackmedic-receiver replica: any one UP heals.",
        [target('up{job="stackmedic-receiver"}', "{{instance}}", instant=True)],
        "none",
        thresholds(RED, (1, GREEN)),
        runbook_links("StackReceiverDown", "StackReceiverReplicaDown"),
        values={"1": ("UP", GREEN), "0": ("DOWN", RED)},
        w=3,
    )
    alerts = table(
        "Firing alerts",
        "Alerts firing now, with their labels (remediation and target among them).",
        [target('ALERTS{alertstate="firing"}', "")],
        [],
    )
    return [row("Now"), firing, healing, escalated, breakers_open, paused, queue, receiver, alerts]


def action_panels() -> list[dict]:
    decisions = timeseries(
        "Decisions by outcome",
        "What the receiver decided for each alert: triggered, duplicate, breaker_open, paused...",
        [
            target(
                "sum by (outcome) (increase(stackmedic_receiver_decisions_total[$__rate_interval]))",
                "{{outcome}}",
            )
        ],
        "none",
        bars=True,
        stack=True,
        minimum=0,
    )
    builds = timeseries(
        "Remediation builds by result",
        "Jenkins builds the receiver started, by rule, job and result.",
        [
            target(
                "sum by (rule, jenkins_job, result) "
                "(increase(stackmedic_receiver_builds_total[$__rate_interval]))",
                "{{rule}} {{jenkins_job}} {{result}}",
            )
        ],
        "none",
        links=runbook_links("StackRemediationFailed", "StackRemediationPerformed"),
        bars=True,
        stack=True,
        minimum=0,
    )
    totals = stat(
        "Decisions in the time range",
        "Count of each outcome over the dashboard's time range.",
        [
            target(
                "sum by (outcome) (increase(stackmedic_receiver_decisions_total[$__range]))",
                "{{outcome}}",
                instant=True,
            )
        ],
        "none",
        thresholds(BLUE),
        w=12,
        h=5,
    )
    last = table(
        "Last action per rule",
        "Seconds since the last remediation build of each rule, job and result.",
        [
            target(
                "time() - max by (rule, target, jenkins_job, result) "
                "(stackmedic_receiver_last_action_timestamp_seconds)",
                "",
            )
        ],
        runbook_links("StackRemediationFailed", "StackRemediationPerformed"),
        w=12,
        h=5,
    )
    last["fieldConfig"]["overrides"] = [
        {"matcher": {"id": "byName", "options": "Value"}, "properties": [{"id": "unit", "value": "s"}]}
    ]
    return [row("Actions"), decisions, builds, totals, last]


def breaker_panels() -> list[dict]:
    timeline = state_timeline(
        "Breaker state per target",
        "CLOSED: remediations allowed. OPEN: the automation gave up on the target until a "
        "person resets it. HALF-OPEN: one trial allowed.",
        [target("max by (rule, target) (stackmedic_receiver_breaker_open)", "{{rule}} / {{target}}")],
        {"0": ("CLOSED", GREEN), "0.5": ("HALF-OPEN", ORANGE), "1": ("OPEN", RED)},
        runbook_links("StackRemediationBreakerOpen"),
    )
    return [row("Breakers"), timeline]


def recovery_panels() -> list[dict]:
    bucket = "stackmedic_receiver_remediation_duration_seconds"
    median = stat(
        "Median time to recover",
        "From the incident's start to its resolution, over the dashboard's time range, per rule.",
        [
            target(
                f"histogram_quantile(0.5, sum by (le, rule) (increase({bucket}_bucket[$__range])))",
                "{{rule}}",
                instant=True,
            )
        ],
        "s",
        thresholds(GREEN, (300, ORANGE), (900, RED)),
        w=8,
    )
    mean = stat(
        "Mean time to recover",
        "Average time from the incident's start to its resolution, over the time range, per rule.",
        [
            target(
                f"sum by (rule) (increase({bucket}_sum[$__range]))\n"
                f"  / sum by (rule) (increase({bucket}_count[$__range]))",
                "{{rule}}",
                instant=True,
            )
        ],
        "s",
        thresholds(GREEN, (300, ORANGE), (900, RED)),
        w=8,
    )
    recovered = stat(
        "Incidents recovered",
        "Incidents that ended resolved over the time range, per rule.",
        [target(f"sum by (rule) (increase({bucket}_count[$__range]))", "{{rule}}", instant=True)],
        "none",
        thresholds(BLUE),
        w=8,
    )
    jenkins = timeseries(
        "Jenkins API latency (p95)",
        "95th percentile of the receiver's requests to Jenkins, per endpoint.",
        [
            target(
                "histogram_quantile(0.95, sum by (le, endpoint) "
                "(rate(stackmedic_receiver_jenkins_request_duration_seconds_bucket[$__rate_interval])))",
                "{{endpoint}}",
            )
        ],
        "s",
        w=24,
        h=7,
        minimum=0,
    )
    return [row("Time to recover"), median, mean, recovered, jenkins]


def backup_panels() -> list[dict]:
    """One row per database (repeated over `database`): the age of the newest backups."""

    def age(metric: str) -> str:
        sel = f'{metric}{{{I}, database=~"$database"}}'
        return f"(time() - ({sel} > 0))\nor\n({sel} * 0 - 1)"

    newest = stat(
        "Newest backup",
        "Age of the newest complete backup. NONE: there is no backup at all.",
        [target(age("stackmedic_backup_newest_timestamp_seconds"), "{{database}}", instant=True)],
        "s",
        thresholds(GREEN, (BACKUP_MAX_AGE, RED)),
        runbook_links("StackBackupStale"),
        values={"-1": ("NONE", RED)},
    )
    verified = stat(
        "Newest verified backup",
        "Age of the newest backup that passed verification: the one an automatic restore uses.",
        [target(age("stackmedic_backup_newest_verified_timestamp_seconds"), "{{database}}", instant=True)],
        "s",
        thresholds(GREEN, (BACKUP_MAX_AGE, RED)),
        runbook_links("StackBackupUnverified"),
        values={"-1": ("NONE", RED)},
    )
    count = stat(
        "Backups kept",
        "Complete backups in the backup folder (retention prunes the rest).",
        [target(f'stackmedic_backups_complete{{{I}, database=~"$database"}}', "{{database}}", instant=True)],
        "none",
        thresholds(RED, (1, GREEN)),
    )
    size = stat(
        "Newest backup size",
        "Compressed size of the newest backup: a sudden drop is a warning sign.",
        [
            target(
                f'stackmedic_backup_newest_size_bytes{{{I}, database=~"$database"}}',
                "{{database}}",
                instant=True,
            )
        ],
        "bytes",
        thresholds(BLUE),
    )
    history = timeseries(
        "Backup age",
        f"Age of the newest and the newest verified backup; the line is the {BACKUP_MAX_AGE // 3600} h "
        "after which StackBackupStale and StackBackupUnverified fire.",
        [
            target(
                f'time() - (stackmedic_backup_newest_timestamp_seconds{{{I}, database=~"$database"}} > 0)',
                "newest",
            ),
            target(
                f'time() - (stackmedic_backup_newest_verified_timestamp_seconds{{{I}, database=~"$database"}} > 0)',
                "newest verified",
            ),
        ],
        "s",
        thresholds(GREEN, (BACKUP_MAX_AGE, RED)),
        runbook_links("StackBackupStale", "StackBackupUnverified"),
        w=24,
        h=6,
        minimum=0,
    )
    header = row("Backups: $database")
    header.update(repeat="database")
    return [header, newest, verified, count, size, history]


def remediation() -> dict:
    return dashboard(
        "stackmedic-remediation",
        "Remediation",
        "What the automation did and can still do: alerts firing, decisions and builds by "
        "outcome, breakers per target, time to recover, and the backups a restore would use.",
        ["stackmedic"],
        now_panels() + action_panels() + breaker_panels() + recovery_panels() + backup_panels(),
        [
            datasource_variable(),
            query_variable("instance", "Exporter", "label_values(stackmedic_build_info, instance)"),
            query_variable(
                "database",
                "Database",
                'label_values(stackmedic_backups_complete{instance=~"$instance"}, database)',
            ),
            runbooks_variable(RUNBOOKS),
        ],
        [remediation_annotation()],
        links_to_dashboards(),
    )


DASHBOARDS = {"stack-health.json": stack_health, "remediation.json": remediation}


def render(build) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    stale = []
    for name, build in DASHBOARDS.items():
        path = HERE / "dashboards" / name
        text = render(build)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        sys.stderr.write("out of date, run python -m deploy.grafana.generate: " + ", ".join(stale) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
