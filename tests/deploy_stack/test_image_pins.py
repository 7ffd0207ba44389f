"""Every third-party image the deploy files name is pinned to a release and can be pinned by
digest without editing them.

No registry answers on these machines, so the shipped defaults cannot carry digests that
were really read (and invented ones would be worse than none): the defaults are exact
release tags, each behind a `*_IMAGE` variable that an operator sets to `name:tag@sha256:...`
(SECURITY.md, "Pinning images by digest"). This lint fails on an image with no tag, on
`latest` or another tag without a version number, on a malformed digest, and on an image
that cannot be overridden.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.deploy_stack.conftest import REPO

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# a tag that names a release: it holds a version number (10.11, v2.42.0, 6.4-apache, 3.11-slim-bookworm)
RELEASE_TAG = re.compile(r"^v?[0-9]+(\.[0-9]+)*([-.][A-Za-z0-9.-]+)?$")
OVERRIDABLE = re.compile(r"^\$\{([A-Z][A-Z0-9_]*_IMAGE):-([^}]+)\}$")
# upstream publishes no versioned tag: the default is only a demo, the operator sets the variable
NO_RELEASE_UPSTREAM = {
    "dsyer/petclinic:latest": "Spring Petclinic has no official image; build your own and set PETCLINIC_IMAGE",
}
OWN_BUILDS = {"stackmedic", "stackmedic-jenkins"}  # built from this checkout's Dockerfile


def problem(ref: str) -> str | None:
    """Why `ref` (name[:tag][@digest]) is not pinned to a release, or None."""
    if "@" in ref:
        return None if DIGEST.search(ref) else f"{ref}: a digest is @sha256: and 64 hex digits"
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
    if not tag:
        return f"{ref}: no tag (that is latest)"
    if not RELEASE_TAG.fullmatch(tag):
        return f"{ref}: tag {tag!r} names no release"
    return None


def compose_problems(text: str) -> list[str]:
    out = []
    for name, svc in yaml.safe_load(text)["services"].items():
        image = svc.get("image")
        if image is None:
            out.append(f"{name}: no image")
            continue
        repo = image.split(":", 1)[0]
        if repo in OWN_BUILDS:
            continue
        m = OVERRIDABLE.fullmatch(image)
        if not m:
            out.append(
                f"{name}: {image} cannot be pinned without editing compose.yaml (use ${{X_IMAGE:-...}})"
            )
            continue
        default = m.group(2)
        if default in NO_RELEASE_UPSTREAM:
            continue
        why = problem(default)
        if why:
            out.append(f"{name}: {why}")
    return out


def dockerfile_problems(text: str) -> list[str]:
    out = []
    stages = set()
    args = {}
    for line in text.splitlines():
        if m := re.match(r"ARG ([A-Z_]+_IMAGE)=(\S+)$", line):
            args[m.group(1)] = m.group(2)
        elif m := re.match(r"FROM (\S+)( AS (\S+))?", line):
            base = m.group(1)
            if base in stages:
                pass
            elif v := re.fullmatch(r"\$\{([A-Z_]+_IMAGE)\}", base):
                if v.group(1) not in args:
                    out.append(f"FROM {base}: ARG {v.group(1)} has no default")
            else:
                out.append(f"FROM {base}: take the base image from an ARG *_IMAGE (a build-arg can pin it)")
            if m.group(3):
                stages.add(m.group(3))
    out += [f"ARG {k}: {why}" for k, v in args.items() if (why := problem(v))]
    return out


def kubernetes_problems(base: Path) -> list[str]:
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    pins = {i["name"]: i for i in kustomization.get("images", [])}
    out = []
    for manifest in sorted(base.glob("*.yaml")):
        for image in re.findall(r"^\s*image:\s*(\S+)", manifest.read_text(), re.M):
            pin = pins.get(image)
            if pin is None:
                out.append(f"{manifest.name}: image {image} is not in kustomization.yaml images")
            elif "digest" not in pin and (
                why := problem(f"{pin.get('newName', image)}:{pin.get('newTag', '')}")
            ):
                out.append(f"{manifest.name}: {why}")
    return out


def test_compose_images_are_release_tags_and_overridable():
    assert compose_problems((REPO / "compose.yaml").read_text()) == []


def test_dockerfile_base_images_are_release_tags_and_overridable():
    assert dockerfile_problems((REPO / "Dockerfile").read_text()) == []


def test_kubernetes_images_are_pinned_through_kustomize():
    assert kubernetes_problems(REPO / "deploy/kubernetes/base") == []


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("mariadb", "mariadb: no tag (that is latest)"),
        ("prom/prometheus:latest", "prom/prometheus:latest: tag 'latest' names no release"),
        ("grafana/grafana-oss:main", "grafana/grafana-oss:main: tag 'main' names no release"),
        ("registry:5000/team/app", "registry:5000/team/app: no tag (that is latest)"),
        ("mariadb:10.11@sha256:abc", "mariadb:10.11@sha256:abc: a digest is @sha256: and 64 hex digits"),
        ("mariadb:10.11@sha256:" + "a" * 64, None),
        ("registry:5000/team/app:1.2.3", None),
        ("wordpress:6.4-apache", None),
        ("prom/prometheus:v2.42.0", None),
    ],
)
def test_the_lint_names_what_is_unpinned(ref: str, why: str | None):
    assert problem(ref) == why


def test_the_lint_refuses_an_image_that_cannot_be_overridden():
    text = "services:\n  db: {image: 'mariadb:10.11'}\n  app: {image: '${APP_IMAGE:-app:latest}'}\n"
    assert compose_problems(text) == [
        "db: mariadb:10.11 cannot be pinned without editing compose.yaml (use ${X_IMAGE:-...})",
        "app: app:latest: tag 'latest' names no release",
    ]
    assert dockerfile_problems("FROM debian\n") == [
        "FROM debian: take the base image from an ARG *_IMAGE (a build-arg can pin it)"
    ]
