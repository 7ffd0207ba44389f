"""start / stop / restart of a configured service's containers, through the Docker SDK.

Containers are found by their compose labels (`com.docker.compose.project`,
`com.docker.compose.service`) or by the configured container name; nothing else is ever
touched. Start, stop and restart address a container by its name, not its ID: a Docker API
proxy can then allow those calls for the stack's names only (compose.yaml's docker-proxy-jobs).
A container that is running (and healthy, when it has a health check) for
`settle` seconds after a start counts as up, and its image is recorded as known good.
`restart` moves a service onto its configured image (as `docker compose up -d` does when
the tag points at a new build) and rolls back to the known-good image when the new one
does not come up.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from .config import Service
from .errors import ROLLED_BACK, ContainerError
from .known_good import KnownGood

log = logging.getLogger(__name__)

OLD_SUFFIX = "-stackmedic-old"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


@dataclass
class ActionResult:
    message: str
    exit_code: int = 0


def _own_config(container_config: dict, image_config: dict) -> dict:
    """The container's own settings: what `docker run`/compose gave, minus the image's defaults.

    A new image then brings its own defaults (PATH, CMD, labels) instead of the old one's.
    """
    config = {
        k: v
        for k, v in container_config.items()
        if k not in ("Image", "Hostname", "Domainname", "MacAddress")
    }
    config["Env"] = [e for e in container_config.get("Env") or [] if e not in (image_config.get("Env") or [])]
    image_labels = image_config.get("Labels") or {}
    config["Labels"] = {
        k: v for k, v in (container_config.get("Labels") or {}).items() if image_labels.get(k) != v
    }
    for key in ("Cmd", "Entrypoint", "WorkingDir", "User", "StopSignal", "Healthcheck"):
        if key in config and config[key] == image_config.get(key):
            config.pop(key)
    for key in ("ExposedPorts", "Volumes"):
        inherited = image_config.get(key) or {}
        config[key] = {
            k: v for k, v in (container_config.get(key) or {}).items() if k not in inherited
        } or None
    return config


def _short(image_id: str) -> str:
    """sha256:0123456789ab -> the 12 hex digits docker shows."""
    return image_id.split(":", 1)[-1][:12]


class ServiceController:
    """Acts on the containers of configured services; the Docker client comes in from outside."""

    def __init__(
        self,
        client: docker.DockerClient,
        known_good: KnownGood,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.client = client
        self.known_good = known_good
        self.clock = clock
        self.sleep = sleep

    def find(self, service: Service) -> list[Any]:
        """The service's containers (running or not), never one parked by a restart."""
        if service.container:
            try:
                return [self.client.containers.get(service.container)]
            except NotFound:
                return []
        labels = [f"{SERVICE_LABEL}={service.compose_service}"]
        if service.compose_project:
            labels.append(f"{PROJECT_LABEL}={service.compose_project}")
        found = self.client.containers.list(all=True, filters={"label": labels})
        return sorted((c for c in found if not c.name.endswith(OLD_SUFFIX)), key=lambda c: c.name)

    def _containers(self, service: Service) -> list[Any]:
        found = self.find(service)
        if not found:
            how = service.container or f"compose service {service.compose_service}"
            raise ContainerError(f"no container for {service.name} ({how}); create it with docker compose up")
        return found

    # --- start / stop -------------------------------------------------------------

    def start(self, service: Service) -> ActionResult:
        """Start the service's stopped containers and wait until they are up."""
        for c in self._containers(service):
            c.reload()
            problem = self._start_and_wait(c, service) if c.status != "running" else self.wait_up(c, service)
            if problem:
                raise ContainerError(f"{service.name}: {c.name} did not come up: {problem}")
            self.known_good.record(service.name, c.attrs["Image"], service.image)
        return ActionResult(f"{service.name} started")

    def stop(self, service: Service) -> ActionResult:
        """Stop the service's containers (SIGTERM, then SIGKILL after stop_timeout)."""
        for c in self._containers(service):
            self.client.api.stop(c.name, timeout=int(service.stop_timeout))
            c.reload()
            if c.status == "running":
                raise ContainerError(f"{service.name}: {c.name} is still running after stop")
        return ActionResult(f"{service.name} stopped")

    def wait_up(self, container: Any, service: Service) -> str:
        """'' once running (and healthy) for `settle` seconds; else why not, by start_timeout."""
        deadline = self.clock() + service.start_timeout
        up_since = None
        restarts = None
        while True:
            try:
                container.reload()
            except NotFound:
                return "container vanished"
            state = container.attrs["State"]
            health = (state.get("Health") or {}).get("Status")
            count = container.attrs.get("RestartCount", 0)
            if state.get("Status") in ("exited", "dead"):
                return f"exited with status {state.get('ExitCode')} {state.get('Error') or ''}".strip()
            if health == "unhealthy":
                return "unhealthy"
            if state.get("Running") and not state.get("Restarting") and health in (None, "healthy"):
                if up_since is None or count != restarts:
                    up_since, restarts = self.clock(), count
                elif self.clock() - up_since >= service.settle:
                    return ""
            else:
                up_since = None
            if self.clock() >= deadline:
                return (
                    f"not up after {service.start_timeout:g}s (status {state.get('Status')}, health {health})"
                )
            self.sleep(0.1)

    # --- restart with rollback ----------------------------------------------------------

    def target_image(self, service: Service, container: Any) -> str:
        """Image id the restart should run: the configured tag as it is now, else the current one."""
        if not service.image:
            return container.attrs["Image"]
        try:
            return self.client.images.get(service.image).id
        except ImageNotFound:
            raise ContainerError(f"image {service.image} of {service.name} is not present locally") from None

    def restart(self, service: Service, rollback: bool = False, auto_rollback: bool = True) -> ActionResult:
        """Restart the service on its target image (or, with `rollback`, on the known-good one)."""
        known = self.known_good.get(service.name)
        if rollback and not known:
            raise ContainerError(f"no known-good image recorded for {service.name}")
        results = [
            self._restart_one(service, c, rollback, auto_rollback, known) for c in self._containers(service)
        ]
        worst = max(results, key=lambda r: r.exit_code)
        return ActionResult("; ".join(r.message for r in results), worst.exit_code)

    def _restart_one(
        self, service: Service, c: Any, rollback: bool, auto_rollback: bool, known: str | None
    ) -> ActionResult:
        target = known if rollback else self.target_image(service, c)
        assert target is not None
        snapshot = self.client.api.inspect_container(c.id)
        if target == c.attrs["Image"]:
            new, old = c, None
            problem = self._restart_and_wait(c, service)
        else:
            new, old = self.recreate(c, snapshot, target, service)
            problem = self._start_and_wait(new, service)
        if not problem:
            self.known_good.record(service.name, target, service.image)
            if old is not None:
                old.remove(force=True)
            log.info("service up service=%s image=%s", service.name, _short(target))
            return ActionResult(f"{service.name} restarted on image {_short(target)}")
        log.warning(
            "service did not come up service=%s image=%s problem=%s", service.name, _short(target), problem
        )
        if rollback or not auto_rollback or not known or known == target:
            raise ContainerError(f"{service.name} did not come up on image {_short(target)}: {problem}")
        self._discard(new)
        back = self._create(snapshot, known)
        if old is not None:
            old.remove(force=True)
        again = self._start_and_wait(back, service)
        if again:
            raise ContainerError(
                f"{service.name} did not come up on image {_short(target)} ({problem}), "
                f"nor on the known-good image {_short(known)} ({again})"
            )
        return ActionResult(
            f"{service.name} did not come up on image {_short(target)} ({problem}); "
            f"rolled back to the known-good image {_short(known)}",
            ROLLED_BACK,
        )

    def _start_and_wait(self, container: Any, service: Service) -> str:
        try:
            self.client.api.start(container.name)
        except APIError as exc:
            return f"cannot start: {exc.explanation or exc}"
        return self.wait_up(container, service)

    def _restart_and_wait(self, container: Any, service: Service) -> str:
        try:
            self.client.api.restart(container.name, timeout=int(service.stop_timeout))
        except APIError as exc:
            return f"cannot restart: {exc.explanation or exc}"
        return self.wait_up(container, service)

    def recreate(self, c: Any, snapshot: dict, image_id: str, service: Service) -> tuple[Any, Any]:
        """Stop `c`, park it under another name, and create (not start) its twin on `image_id`."""
        c.stop(timeout=int(service.stop_timeout))
        name = snapshot["Name"].lstrip("/")
        with contextlib.suppress(NotFound):
            self.client.containers.get(name + OLD_SUFFIX).remove(force=True)
        c.rename(name + OLD_SUFFIX)
        try:
            new = self._create(snapshot, image_id)
        except DockerException:
            # Put the old one back as it was before failing loudly.
            c.rename(name)
            c.start()
            raise
        return new, c

    def _discard(self, container: Any) -> None:
        with contextlib.suppress(NotFound):
            container.remove(force=True)

    def _create(self, snapshot: dict, image_id: str) -> Any:
        name = snapshot["Name"].lstrip("/")
        with contextlib.suppress(NotFound):
            self.client.containers.get(name).remove(force=True)
        try:
            image_config = self.client.api.inspect_image(snapshot["Image"])["Config"] or {}
        except ImageNotFound:
            image_config = {}
        body = _own_config(snapshot["Config"], image_config)
        body["Image"] = image_id
        host_config = snapshot["HostConfig"]
        body["HostConfig"] = host_config
        mode = host_config.get("NetworkMode") or "default"
        networks = (snapshot.get("NetworkSettings") or {}).get("Networks") or {}
        extra: list[tuple[str, list[str]]] = []
        if mode not in ("default", "bridge", "host", "none") and not mode.startswith("container:"):
            short_id = snapshot["Id"][:12]
            for net, endpoint in networks.items():
                aliases = [a for a in (endpoint.get("Aliases") or []) if a != short_id]
                if "NetworkingConfig" not in body:
                    body["NetworkingConfig"] = {"EndpointsConfig": {net: {"Aliases": aliases}}}
                else:
                    extra.append((net, aliases))
        created = self.client.api.create_container_from_config(body, name=name)
        for net, aliases in extra:
            self.client.api.connect_container_to_network(created["Id"], net, aliases=aliases)
        return self.client.containers.get(created["Id"])
