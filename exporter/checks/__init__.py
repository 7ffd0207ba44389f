"""Check kinds, one module each, and `build_checks` turning a configuration into checks.

Modules are imported only for the kinds configured: the docker SDK and PyMySQL cost
megabytes of memory that a machine without Docker or MySQL should not pay.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Check


def _system(section: dict) -> list[Check]:
    from .system import SystemCheck

    return [SystemCheck(section["filesystems"], section["timeout"])]


def _processes(section: dict) -> list[Check]:
    from .processes import Group, ProcessesCheck

    return [ProcessesCheck([Group.from_config(g) for g in section["groups"]], section["timeout"])]


def _ports(section: dict) -> list[Check]:
    from .ports import PortsCheck, PortTarget

    targets = [PortTarget.from_config(t) for t in section["targets"]]
    return [PortsCheck(targets, section["discover"], section["timeout"])]


def _http(section: list) -> list[Check]:
    from .http_check import HttpCheck, HttpTarget

    return [HttpCheck(HttpTarget.from_config(t)) for t in section]


def _mysql(section: list) -> list[Check]:
    from .mysql_check import MysqlCheck, MysqlServer

    return [MysqlCheck(MysqlServer.from_config(s)) for s in section]


def _containers(section: dict) -> list[Check]:
    from .containers import ContainersCheck, Service

    services = [Service.from_config(s) for s in section["services"]]
    return [ContainersCheck(services, section["docker_url"], section["timeout"])]


def _docker_space(section: dict) -> list[Check]:
    from .docker_space import DockerSpaceCheck

    return [DockerSpaceCheck(section["docker_url"], section["refresh_interval"], section["timeout"])]


def _backups(section: dict) -> list[Check]:
    from .backups import BackupsCheck

    return [BackupsCheck(section["directory"], section.get("databases"), section["timeout"])]


# config section -> builder, in the order checks are listed
KINDS: dict[str, Callable[..., list[Check]]] = {
    "system": _system,
    "processes": _processes,
    "ports": _ports,
    "containers": _containers,
    "docker_space": _docker_space,
    "http": _http,
    "mysql": _mysql,
    "backups": _backups,
}


def build_checks(config: dict) -> list[Check]:
    """Every check the configuration turns on."""
    checks: list[Check] = []
    for section, build in KINDS.items():
        if config.get(section) is not None:
            checks.extend(build(config[section]))
    return checks


__all__ = ["KINDS", "Check", "build_checks"]
