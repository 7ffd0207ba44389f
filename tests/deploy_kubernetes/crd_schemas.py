"""The Prometheus Operator's custom resources as strict JSON Schemas, for `jsonschema`.

kubernetes-validate knows the built-in kinds only. The operator's kinds (ServiceMonitor,
PrometheusRule, AlertmanagerConfig) are checked against the JSON Schemas vendored in
deploy/kubernetes/crds/ (its README says where they come from, their version and licence):
schemas of the pydantic models that the PyPI package cloudcoil.models.prometheus_operator
generates from the operator's CRDs, so they carry the CRDs' field names, types, enums and
required keys. pydantic leaves unknown keys allowed; the API server prunes or rejects them
(and `kubectl apply --validate=strict` refuses them), so every object schema with named
properties is closed here: an unknown or misspelt field fails, as it would on a cluster.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

CRDS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "crds"


def _python_pattern(pattern: str) -> str:
    """A Go regexp's group-scoped flag `((?i)a|b)` as Python's `((?i:a|b))`.

    Go applies an inline flag to the rest of its group; Python's `re` (which jsonschema uses)
    only accepts one at the very start (the CRD's weekday and month patterns have them).
    """
    out = pattern
    while (start := out.find("((?i)")) >= 0:
        depth, i, escaped = 0, start, False
        for i in range(start, len(out)):
            if not escaped:
                depth += {"(": 1, ")": -1}.get(out[i], 0)
                if depth == 0:
                    break
            escaped = out[i] == "\\" and not escaped
        out = out[: start + 1] + "(?i:" + out[start + 5 : i] + ")" + out[i:]
    return out


def _close(node: Any) -> Any:
    """Every object schema with `properties` and nothing said of other keys refuses them."""
    if isinstance(node, dict):
        out = {k: _close(v) for k, v in node.items()}
        if isinstance(out.get("pattern"), str):
            out["pattern"] = _python_pattern(out["pattern"])
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_close(v) for v in node]
    return node


@functools.cache
def schema(api_version: str, kind: str) -> dict[str, Any]:
    """The strict schema of `kind` in `api_version` (monitoring.coreos.com/v1 or v1alpha1)."""
    group, _, version = api_version.partition("/")
    path = CRDS / f"{group}_{version}_{kind}.json"
    if group != "monitoring.coreos.com" or not path.is_file():
        raise LookupError(f"no schema for {api_version} {kind} (deploy/kubernetes/crds/)")
    return _close(json.loads(path.read_text()))


def errors(obj: dict[str, Any]) -> list[str]:
    """Every violation of `obj` against its kind's schema, as `path: message`."""
    validator = jsonschema.Draft202012Validator(schema(obj["apiVersion"], obj["kind"]))
    out = []
    for error in validator.iter_errors(obj):
        # an optional field is `anyOf: [X, null]`: name the deepest branch, not the whole list
        best = jsonschema.exceptions.best_match([error])
        out.append(f"{'.'.join(map(str, best.absolute_path)) or '(root)'}: {best.message[:200]}")
    return sorted(out)
