"""Containers (docker SDK): running containers, state, health and restarts per service.

One cheap list call per scrape (no inspect of every container); only the containers that
match a configured service are inspected, for their health and RestartCount. A service
matches on its compose service label (default: its name) or on a container name regex.
Sample::

    stackmedic_docker_up 1
    stackmedic_container_running{compose_service="petclinic"} 1
    stackmedic_container_expected{compose_service="petclinic"} 1
    stackmedic_container_state{compose_service="petclinic",state="exited"} 0
    stackmedic_container_health{compose_service="petclinic",health="none"} 1
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..deadline import Deadline
from ..metrics import MetricSpec, Samples
from .base import Check
from .docker_api import docker_client

log = logging.getLogger(__name__)

SERVICE_LABEL = "com.docker.compose.service"
PROJECT_LABEL = "com.docker.compose.project"
CONTAINER_STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
CONTAINER_HEALTH = ("healthy", "unhealthy", "starting", "none")

DOCKER_UP = MetricSpec("docker_up", "gauge", "1 when the Docker engine answered the container list call.")
RUNNING = MetricSpec("container_running", "gauge", "Running containers of the service.", ("compose_service",))
EXPECTED = MetricSpec(
    "container_expected", "gauge", "Configured minimum of running containers.", ("compose_service",)
)
STATE = MetricSpec(
    "container_state", "gauge", "Containers of the service per state.", ("compose_service", "state")
)
HEALTH = MetricSpec(
    "container_health", "gauge", "Containers of the service per health status.", ("compose_service", "health")
)
RESTARTS = MetricSpec(
    "container_restarts",
    "gauge",
    "Docker's RestartCount summed over the service's containers.",
    ("compose_service",),
)


@dataclass(frozen=True)
class Service:
    """A configured service: by compose label, or by container name regex."""

    name: str
    compose_service: str | None = None
    compose_project: str | None = None
    name_regex: re.Pattern | None = None
    expected: int = 1

    @classmethod
    def from_config(cls, item: dict) -> Service:
        pattern = re.compile(item["name_regex"]) if item.get("name_regex") else None
        return cls(
            item["name"], item.get("compose_service"), item.get("compose_project"), pattern, item["expected"]
        )

    def matches(self, container: dict) -> bool:
        labels = container.get("Labels") or {}
        if self.compose_project and labels.get(PROJECT_LABEL) != self.compose_project:
            return False
        if self.name_regex is not None:
            names = [n.lstrip("/") for n in container.get("Names") or ()]
            return any(self.name_regex.search(n) for n in names)
        return labels.get(SERVICE_LABEL) == self.compose_service


class ContainersCheck(Check):
    """Containers of the configured services, from one list call."""

    kind = "containers"
    metrics = (DOCKER_UP, RUNNING, EXPECTED, STATE, HEALTH, RESTARTS)

    def __init__(
        self,
        services: Sequence[Service],
        docker_url: str,
        timeout: float = 5.0,
        client_factory: Callable[[str, float], Any] = docker_client,
    ):
        super().__init__("containers", timeout)
        self.services = list(services)
        self.docker_url = docker_url
        self._client_factory = client_factory
        self._client: Any = None
        self._was_up: bool | None = None
        self._inspected: dict[tuple[str, str], tuple[str, str, int]] = {}
        self._seen: set[tuple[str, str]] = set()

    @classmethod
    def from_section(cls, section: dict) -> list[Check]:
        services = [Service.from_config(s) for s in section["services"]]
        return [cls(services, section["docker_url"], section["timeout"])]

    def _api(self) -> Any:
        if self._client is None:
            self._client = self._client_factory(self.docker_url, self.timeout)
        return self._client

    def run(self, out: Samples, deadline: Deadline) -> None:
        try:
            # each call, the version negotiation included, gets what is left of the deadline
            listed = self._api().containers(deadline.timeout(self.timeout))
        except Exception as exc:  # noqa: BLE001 - the engine down is docker_up 0
            self._log_state(False, exc)
            self.close()  # negotiate again when it is back
            self.blank(out, "", 0.0)
            return
        self._log_state(True)
        self._seen = set()
        out.add(DOCKER_UP, 1)
        for service in self.services:
            states = dict.fromkeys(CONTAINER_STATES, 0)
            health = dict.fromkeys(CONTAINER_HEALTH, 0)
            restarts = 0
            for c in listed:
                if not service.matches(c):
                    continue
                state, status, count = self._inspect(c, deadline)
                if state is None:
                    continue  # removed since the list call
                states[state] = states.get(state, 0) + 1
                health[status] = health.get(status, 0) + 1
                restarts += count
            self._emit(out, service, states, health, restarts)
        self._inspected = {k: v for k, v in self._inspected.items() if k in self._seen}

    def _inspect(self, listed: dict, deadline: Deadline) -> tuple[str | None, str, int]:
        # Docker's Status text ("Up 5 minutes (healthy)") changes with every restart and
        # health change, so an inspect is reused for as long as the text stays the same
        key = (listed["Id"], listed.get("Status", ""))
        cached = self._inspected.get(key)
        if cached is None:
            if deadline.expired():
                # the collector has reported a timeout already: stop rather than go on
                raise TimeoutError("scrape deadline passed while inspecting containers")
            try:
                info = self._api().inspect(listed["Id"], deadline.timeout(self.timeout))
            except Exception as exc:  # noqa: BLE001 - gone between list and inspect
                log.debug("container inspect failed id=%s error=%s", listed["Id"][:12], exc)
                return None, "none", 0
            state = info.get("State") or {}
            health = (state.get("Health") or {}).get("Status") or "none"
            status = state.get("Status") or listed.get("State") or "created"
            cached = self._inspected[key] = (status, health, info.get("RestartCount") or 0)
        self._seen.add(key)
        return cached

    def _emit(self, out: Samples, service: Service, states: dict, health: dict, restarts: int) -> None:
        name = service.name
        out.add(RUNNING, states.get("running", 0), name)
        out.add(EXPECTED, service.expected, name)
        for state in CONTAINER_STATES:
            out.add(STATE, states.get(state, 0), name, state)
        for status in CONTAINER_HEALTH:
            out.add(HEALTH, health.get(status, 0), name, status)
        out.add(RESTARTS, restarts, name)

    def blank(self, out: Samples, reason: str, elapsed: float) -> None:
        out.add(DOCKER_UP, 0)
        for service in self.services:
            self._emit(out, service, {}, {}, 0)

    def _log_state(self, up: bool, exc: Exception | None = None) -> None:
        if up != self._was_up:
            if up:
                log.info("docker engine up url=%s", self.docker_url)
            else:
                log.warning("docker engine down url=%s error=%s", self.docker_url, exc)
        self._was_up = up

    def close(self) -> None:
        client, self._client = self._client, None  # a later run connects again
        if client is not None:
            client.close()
