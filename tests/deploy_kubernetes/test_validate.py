"""Every rendered object is valid, strictly: built-in kinds against the Kubernetes schemas that
PyPI kubernetes-validate ships (`strict`: unknown fields fail), the Prometheus Operator's kinds
against their CRD schemas (crd_schemas.py), for the oldest and the newest Kubernetes we claim."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest

from tests.deploy_kubernetes import crd_schemas
from tests.deploy_kubernetes.render import OVERLAYS, find, name_of, overlay

# OpenShift 4.16 is Kubernetes 1.29; the newest schemas kubernetes-validate ships
VERSIONS = ["1.29.0", kubernetes_validate.utils.latest_version()]
CUSTOM = "monitoring.coreos.com/"


def builtin_errors(obj: dict, version: str) -> str | None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return f"{name_of(obj)}: {path}: {exc.message}"
    return None


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", OVERLAYS)
def test_every_builtin_object_validates_strictly(name: str, version: str):
    objects = [o for o in overlay(name) if not o["apiVersion"].startswith(CUSTOM)]
    assert {o["kind"] for o in objects} >= {"Deployment", "CronJob", "Service", "NetworkPolicy", "Role"}
    problems = [p for o in objects if (p := builtin_errors(o, version))]
    assert problems == []


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_custom_resource_validates_against_its_crd(name: str):
    objects = [o for o in overlay(name) if o["apiVersion"].startswith(CUSTOM)]
    assert sorted(o["kind"] for o in objects) == [
        "AlertmanagerConfig",
        "PrometheusRule",
        "ServiceMonitor",
        "ServiceMonitor",
    ]
    problems = {name_of(o): e for o in objects if (e := crd_schemas.errors(o))}
    assert problems == {}


def test_the_command_line_tool_agrees(tmp_path: Path):
    """kubernetes-validate's own command, as a person would run it, on a rendered overlay."""
    objects = [o for o in overlay("openshift") if not o["apiVersion"].startswith(CUSTOM)]
    import yaml

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump_all(objects))
    bad_objects = copy.deepcopy(objects)
    find(bad_objects, "Deployment", "stackmedic-receiver")["spec"]["replica"] = 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all(bad_objects))
    cli = [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet"]
    assert subprocess.run([*cli, str(good)], capture_output=True, text=True, timeout=300).returncode == 0
    run = subprocess.run([*cli, str(bad)], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "deployment/stackmedic-receiver" in run.stdout
    assert "'replica' was unexpected" in run.stdout


def test_a_misspelt_builtin_field_fails():
    deployment = find(overlay("openshift"), "Deployment", "stackmedic-exporter")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = (
        True
    )
    message = builtin_errors(deployment, VERSIONS[0])
    assert message is not None
    assert "'readOnlyRootFileSystem' was unexpected" in message


@pytest.mark.parametrize(
    ("kind", "change", "expected"),
    [
        (
            "ServiceMonitor",
            lambda o: o["spec"]["endpoints"][0].update(intervall="5s"),
            "spec.endpoints.0: Additional properties are not allowed ('intervall' was unexpected)",
        ),
        (
            "PrometheusRule",
            lambda o: o["spec"]["groups"][0]["rules"][0].update(fore="5m"),
            "spec.groups.0.rules.0: Additional properties are not allowed ('fore' was unexpected)",
        ),
        (
            "PrometheusRule",
            lambda o: o["spec"]["groups"][0]["rules"][0].pop("expr"),
            "spec.groups.0.rules.0: 'expr' is a required property",
        ),
        (
            "AlertmanagerConfig",
            lambda o: o["spec"]["route"].update(group_by=["alertname"]),
            "spec.route: Additional properties are not allowed ('group_by' was unexpected)",
        ),
    ],
)
def test_a_wrong_custom_resource_fails(kind: str, change, expected: str):
    obj = next(o for o in overlay("kube-prometheus-stack") if o["kind"] == kind)
    change(obj)
    assert expected in crd_schemas.errors(obj)


def test_the_vendored_schemas_keep_their_licence_and_say_where_they_come_from():
    from deploy.kubernetes import vendor_crd_schemas as vendor

    crds = crd_schemas.CRDS
    assert "Apache License" in (crds / "LICENSE").read_text()
    readme = (crds / "README.md").read_text()
    assert f"`{vendor.PACKAGE}` **{vendor.PACKAGE_VERSION}**" in readme
    expected = sorted(vendor.file_name(version, kind) for version, kind in vendor.KINDS)
    assert sorted(p.name for p in crds.glob("*.json")) == expected
    for name in expected:
        assert f"`{name}`" in readme
