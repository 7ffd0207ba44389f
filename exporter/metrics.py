"""Every metric the exporter exposes, and the per-scrape sample buffer the checks fill.

The table below is the contract of docs/design.md ("Exporter metrics"); a test keeps the
two in step. Checks add samples by short key (`out.add("http_up", 1, "petclinic")`) and
the collector turns one scrape's samples into fresh metric families.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

PREFIX = "stackmedic_"

CHECK_REASONS = ("timeout", "error", "still_running")
HTTP_REASONS = ("timeout", "connect", "tls", "status", "keyword", "body_too_large", "error")
CONTAINER_STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
CONTAINER_HEALTH = ("healthy", "unhealthy", "starting", "none")


@dataclass(frozen=True)
class Spec:
    """One metric family: name without prefix, type, help text and label names."""

    name: str
    kind: str  # "gauge" or "counter" (counters are named without _total here)
    help: str
    labels: tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        return PREFIX + self.name + ("_total" if self.kind == "counter" else "")


_SPECS = [
    Spec("build_info", "gauge", "Build information of stackmedic-exporter; always 1.", ("version",)),
    Spec(
        "check_success",
        "gauge",
        "1 when the check ran to completion (even if its target is down).",
        ("check",),
    ),
    Spec("check_duration_seconds", "gauge", "Time the check took in this scrape.", ("check",)),
    Spec(
        "check_failure_reason",
        "gauge",
        "1 for the reason a check did not complete (timeout, error, still_running), 0 for the others.",
        ("check", "reason"),
    ),
    Spec("docker_up", "gauge", "1 when the Docker engine answered the container list call."),
    Spec("container_running", "gauge", "Running containers of the service.", ("compose_service",)),
    Spec("container_expected", "gauge", "Configured minimum of running containers.", ("compose_service",)),
    Spec("container_state", "gauge", "Containers of the service per state.", ("compose_service", "state")),
    Spec(
        "container_health",
        "gauge",
        "Containers of the service per health status.",
        ("compose_service", "health"),
    ),
    Spec(
        "container_restarts",
        "gauge",
        "Docker's RestartCount summed over the service's containers.",
        ("compose_service",),
    ),
    Spec("process_instances", "gauge", "Processes matching the group.", ("group",)),
    Spec(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory of the group's processes, summed.",
        ("group",),
    ),
    Spec(
        "process_cpu_seconds",
        "counter",
        "User and system CPU time of the group's live processes, summed.",
        ("group",),
    ),
    Spec("http_up", "gauge", "1 when the status is allowed and the body matches.", ("target",)),
    Spec("http_status_code", "gauge", "HTTP status of the last response, 0 when none.", ("target",)),
    Spec("http_duration_seconds", "gauge", "Time of the HTTP check, body included.", ("target",)),
    Spec(
        "http_failure_reason",
        "gauge",
        "1 for the reason the HTTP check failed, 0 for the others.",
        ("target", "reason"),
    ),
    Spec(
        "mysql_up",
        "gauge",
        "1 when the MySQL/MariaDB server accepted a connection and answered.",
        ("server",),
    ),
    Spec(
        "mysql_table_present",
        "gauge",
        "1 when the table exists (and is visible to the user).",
        ("server", "database", "table"),
    ),
    Spec(
        "mysql_table_has_rows",
        "gauge",
        "1 when SELECT EXISTS(SELECT 1 FROM table) is true.",
        ("server", "database", "table"),
    ),
    Spec("mysql_query_success", "gauge", "1 when the configured query returned a row.", ("server", "query")),
    Spec(
        "mysql_query_duration_seconds",
        "gauge",
        "Time of the table and query checks after connecting.",
        ("server",),
    ),
    Spec("tcp_port_open", "gauge", "1 when a TCP connect to the port succeeded.", ("name", "port")),
    Spec(
        "tcp_port_listener_info",
        "gauge",
        "The program listening on the port (unknown when not visible, none when nothing listens); always 1.",
        ("name", "port", "program"),
    ),
    Spec(
        "tcp_port_expected_program",
        "gauge",
        "1 when the listener is the configured program (1 when none is configured).",
        ("name", "port"),
    ),
    Spec("cpu_utilization_ratio", "gauge", "Busy CPU time over all CPUs since the previous scrape, 0..1."),
    Spec("memory_total_bytes", "gauge", "Total physical memory."),
    Spec("memory_available_bytes", "gauge", "Memory available to new processes without swapping."),
    Spec("swap_total_bytes", "gauge", "Total swap."),
    Spec("swap_used_bytes", "gauge", "Swap in use."),
    Spec("load1", "gauge", "1-minute load average."),
    Spec("load5", "gauge", "5-minute load average."),
    Spec("load15", "gauge", "15-minute load average."),
    Spec("filesystem_size_bytes", "gauge", "Size of the filesystem, 0 when not mounted.", ("mountpoint",)),
    Spec(
        "filesystem_avail_bytes",
        "gauge",
        "Bytes available to unprivileged users, 0 when not mounted.",
        ("mountpoint",),
    ),
    Spec(
        "docker_volumes_bytes",
        "gauge",
        "Bytes used by Docker volumes (docker system df, cached; see refresh timestamp).",
    ),
    Spec(
        "docker_images_bytes",
        "gauge",
        "Bytes used by Docker images (docker system df, cached; see refresh timestamp).",
    ),
    Spec(
        "docker_space_refresh_timestamp_seconds",
        "gauge",
        "When the cached docker system df was last filled, 0 never.",
    ),
    Spec(
        "backup_newest_timestamp_seconds",
        "gauge",
        "Creation time of the newest complete backup, 0 when none.",
        ("database",),
    ),
    Spec(
        "backup_newest_verified_timestamp_seconds",
        "gauge",
        "Creation time of the newest backup verified OK, 0 when none verified.",
        ("database",),
    ),
    Spec("backups_complete", "gauge", "Complete backups (those with a manifest).", ("database",)),
    Spec(
        "backup_newest_size_bytes", "gauge", "Size of the newest complete backup, 0 when none.", ("database",)
    ),
]

SPECS: dict[str, Spec] = {s.name: s for s in _SPECS}


class Samples:
    """Samples of one check in one scrape: (metric key, label values, value)."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[str, tuple[str, ...], float]] = []

    def add(self, key: str, value: float, *labels: str) -> None:
        self.items.append((key, labels, value))

    def extend(self, other: Samples) -> None:
        self.items.extend(other.items)

    def value(self, key: str, *labels: str) -> float | None:
        """The value of one sample, or None; for tests and the landing page."""
        for k, lv, v in self.items:
            if k == key and lv == labels:
                return v
        return None


def families(samples: Iterable[Samples]) -> Iterator[Metric]:
    """Fresh metric families for one scrape, in the table's order, skipping empty ones."""
    grouped: dict[str, list[tuple[tuple[str, ...], float]]] = {}
    for s in samples:
        for key, labels, value in s.items:
            grouped.setdefault(key, []).append((labels, value))
    for spec in _SPECS:
        rows = grouped.get(spec.name)
        if not rows:
            continue
        if spec.kind == "counter":
            family: Metric = CounterMetricFamily(PREFIX + spec.name, spec.help, labels=spec.labels)
        else:
            family = GaugeMetricFamily(PREFIX + spec.name, spec.help, labels=spec.labels)
        for labels, value in rows:
            family.add_metric(labels, value)
        yield family
