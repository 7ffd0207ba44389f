"""The shipped kustomize tree rendered by the real `kubectl kustomize`, parsed once per overlay."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

from harness.services import require_binary

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = REPO / "deploy" / "kubernetes"
BASE = KUBERNETES_DIR / "base"
OVERLAYS = sorted(p.name for p in (KUBERNETES_DIR / "overlays").iterdir() if p.is_dir())
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


class _Loader(yaml.SafeLoader):
    """PyYAML reads a bare `=` as YAML 1.1's `value` tag; Kubernetes reads a string."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def kustomize(path: Path) -> list[dict[str, Any]]:
    """Every object `kubectl kustomize PATH` writes; fails the test with kubectl's message."""
    run = subprocess.run(
        [require_binary("kubectl"), "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    if run.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed: {run.stderr.strip()}")
    return [d for d in yaml.load_all(run.stdout, Loader=_Loader) if d]


@functools.cache
def _overlay(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(kustomize(KUBERNETES_DIR / "overlays" / name))


def overlay(name: str) -> list[dict[str, Any]]:
    """The rendered overlay (a fresh deep copy: tests may change what they get)."""
    import copy

    return copy.deepcopy(list(_overlay(name)))


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"no {kind} {name}")


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod template's spec of a workload object."""
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def name_of(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"
