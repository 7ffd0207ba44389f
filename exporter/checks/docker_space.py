"""Docker disk space (`docker system df`), refreshed in the background and cached.

`docker system df` walks every layer and volume and can take minutes on a busy host, so
a scrape never calls it: a background thread refreshes the cache every
`refresh_interval`, and the scrape reports the cached values with the time they were
filled. Sample::

    stackmedic_docker_images_bytes 1.3e+09
    stackmedic_docker_volumes_bytes 4.2e+08
    stackmedic_docker_space_refresh_timestamp_seconds 1.7e+09
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..deadline import Deadline
from ..metrics import MetricSpec, Samples
from .base import Check
from .docker_api import docker_client

log = logging.getLogger(__name__)

VOLUMES = MetricSpec(
    "docker_volumes_bytes",
    "gauge",
    "Bytes used by Docker volumes (docker system df, cached; see refresh timestamp).",
)
IMAGES = MetricSpec(
    "docker_images_bytes",
    "gauge",
    "Bytes used by Docker images (docker system df, cached; see refresh timestamp).",
)
REFRESHED = MetricSpec(
    "docker_space_refresh_timestamp_seconds",
    "gauge",
    "When the cached docker system df was last filled, 0 never.",
)


def space_of(df: dict) -> tuple[int, int]:
    """(images bytes, volumes bytes) from the engine's /system/df answer."""
    images = df.get("LayersSize")
    if images is None:
        images = sum(
            max(0, i.get("Size") or 0) - max(0, i.get("SharedSize") or 0) for i in df.get("Images") or ()
        )
    volumes = 0
    for v in df.get("Volumes") or ():
        size = (v.get("UsageData") or {}).get("Size", -1)
        volumes += max(0, size or 0)  # -1: not measured (e.g. a non-local driver)
    return int(images), volumes


class DockerSpaceCheck(Check):
    """Cached bytes used by images and volumes."""

    kind = "docker_space"
    metrics = (VOLUMES, IMAGES, REFRESHED)

    def __init__(
        self,
        docker_url: str,
        refresh_interval: float = 300.0,
        timeout: float = 120.0,
        client_factory: Callable[[str, float], Any] = docker_client,
        wall_clock: Callable[[], float] = time.time,
    ):
        # the scrape only reads the cache: a short timeout for that part
        super().__init__("docker_space", 1.0)
        self.docker_url = docker_url
        self.refresh_interval = refresh_interval
        self.df_timeout = timeout
        self._client_factory = client_factory
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._cache = (0, 0, 0.0)  # images, volumes, when
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_section(cls, section: dict) -> list[Check]:
        return [cls(section["docker_url"], section["refresh_interval"], section["timeout"])]

    def refresh(self) -> bool:
        """Fill the cache now; True when it worked."""
        try:
            client = self._client_factory(self.docker_url, self.df_timeout)
            try:
                images, volumes = space_of(client.df())
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001 - keep the old values, say so once per refresh
            log.warning("docker system df failed url=%s error=%s", self.docker_url, exc)
            return False
        with self._lock:
            self._cache = (images, volumes, self._wall_clock())
        return True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="docker-space", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.refresh_interval)

    def run(self, out: Samples, deadline: Deadline) -> None:
        with self._lock:
            images, volumes, when = self._cache
        out.add(IMAGES, images)
        out.add(VOLUMES, volumes)
        out.add(REFRESHED, when)

    def blank(self, out: Samples, reason: str, elapsed: float) -> None:
        self.run(out, Deadline(0.0))

    def close(self) -> None:
        self._stop.set()
