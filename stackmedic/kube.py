"""Where a program in a Kubernetes pod finds the API: shared by the receiver's actuator and the
exporter's `kubernetes` check.

In a pod: the API at `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, the service
account's token (read again for every request: projected tokens rotate), its CA and its
namespace under /var/run/secrets/kubernetes.io/serviceaccount.
"""

from __future__ import annotations

import os
from pathlib import Path

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE = str(SERVICE_ACCOUNT / "token")
CA_FILE = str(SERVICE_ACCOUNT / "ca.crt")


class KubeConfigError(Exception):
    """The API cannot be located: not in a pod, and not configured."""


def in_cluster_url() -> str:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise KubeConfigError("api_url is not set and KUBERNETES_SERVICE_HOST is not either (not in a pod?)")
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def in_cluster_namespace() -> str:
    try:
        return (SERVICE_ACCOUNT / "namespace").read_text().strip()
    except OSError as exc:
        raise KubeConfigError(f"namespace is not set and {SERVICE_ACCOUNT}/namespace cannot be read") from exc


def read_token(path: str) -> str:
    """The bearer token in `path` (OSError when it cannot be read)."""
    return Path(path).read_text().strip()
