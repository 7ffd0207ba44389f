"""Writes the Prometheus Operator's CRD schemas that tests/deploy_kubernetes validates against.

    pip install 'cloudcoil.models.prometheus_operator==0.80.1.0'
    python -m deploy.kubernetes.vendor_crd_schemas

kubernetes-validate knows the built-in kinds only. The operator's kinds come from the PyPI
package cloudcoil.models.prometheus_operator (Apache-2.0): pydantic models its authors generate
from the operator's CRDs. This writes each kind's JSON Schema (pydantic's, unchanged) to
deploy/kubernetes/crds/, with the package's licence, so the tests need neither the package nor
its pytest plugin. Run it again, and update PACKAGE_VERSION and crds/README.md, to move to a
newer operator release.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from importlib import metadata
from pathlib import Path

PACKAGE = "cloudcoil.models.prometheus_operator"
PACKAGE_VERSION = "0.80.1.0"
KINDS = [("v1", "ServiceMonitor"), ("v1", "PrometheusRule"), ("v1alpha1", "AlertmanagerConfig")]
OUT = Path(__file__).resolve().parent / "crds"


def file_name(version: str, kind: str) -> str:
    return f"monitoring.coreos.com_{version}_{kind}.json"


def main() -> int:
    have = metadata.version(PACKAGE)
    if have != PACKAGE_VERSION:
        sys.stderr.write(f"{PACKAGE} {have} is installed; this vendors {PACKAGE_VERSION}\n")
        return 1
    for version, kind in KINDS:
        model = getattr(importlib.import_module(f"{PACKAGE}.{version}"), kind)
        text = json.dumps(model.model_json_schema(), indent=1, sort_keys=True) + "\n"
        (OUT / file_name(version, kind)).write_text(text)
    licence = next(f for f in metadata.files(PACKAGE) or [] if f.name == "LICENSE")
    shutil.copyfile(Path(str(licence.locate())), OUT / "LICENSE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
