"""The Docker client, made on first use: the docker SDK is imported only when configured."""

from __future__ import annotations

from typing import Any


def docker_client(base_url: str, timeout: float) -> Any:
    """A docker.DockerClient for `base_url`; raises when the engine does not answer."""
    import docker

    # the API version is negotiated with the engine, so this call needs it to be up
    client = docker.DockerClient(base_url=base_url, timeout=timeout)
    # no proxy for the engine's socket: saves reading the environment on every request
    client.api.trust_env = False
    return client
