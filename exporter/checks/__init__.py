"""Check kinds, one module each, and `build_checks` turning a configuration into checks.

Modules are imported only for the kinds configured: the docker SDK and PyMySQL cost
megabytes of memory that a machine without Docker or MySQL should not pay.
"""

from __future__ import annotations

import importlib

from ..metrics import MetricSpec, merge_specs
from .base import Check

# config section -> (module, check class), in the order checks are listed
KINDS: dict[str, tuple[str, str]] = {
    "system": ("system", "SystemCheck"),
    "processes": ("processes", "ProcessesCheck"),
    "ports": ("ports", "PortsCheck"),
    "containers": ("containers", "ContainersCheck"),
    "docker_space": ("docker_space", "DockerSpaceCheck"),
    "http": ("http_check", "HttpCheck"),
    "mysql": ("mysql_check", "MysqlCheck"),
    "backups": ("backups", "BackupsCheck"),
    "kubernetes": ("workloads", "WorkloadsCheck"),
}


def check_class(kind: str) -> type[Check]:
    """The class of a check kind, its module imported now."""
    module, name = KINDS[kind]
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def build_checks(config: dict) -> list[Check]:
    """Every check the configuration turns on."""
    checks: list[Check] = []
    for kind in KINDS:
        if config.get(kind) is not None:
            checks.extend(check_class(kind).from_section(config[kind]))
    return checks


def declared_metrics() -> list[MetricSpec]:
    """Every metric any check kind can fill (imports every kind: for tests and docs)."""
    from ..collector import RUNNER_METRICS

    return merge_specs([RUNNER_METRICS, *(check_class(kind).metrics for kind in KINDS)])


__all__ = ["KINDS", "Check", "build_checks", "check_class", "declared_metrics"]
