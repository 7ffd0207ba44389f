"""Every file of this repository that deploy/kubernetes/ and docs/kubernetes.md point to exists:
a comment sending a platform engineer to a test or module that was renamed is worse than none."""

from __future__ import annotations

import re

from tests.deploy_kubernetes.render import KUBERNETES_DIR, REPO

REFERENCE = re.compile(
    r"(?<![\w/.-])((?:tests|harness|receiver|exporter|jobs|stackmedic|deploy|docs)/[\w./-]*\.(?:py|md|yml|yaml))"
)


def test_every_referenced_file_exists():
    sources = [REPO / "docs" / "kubernetes.md", *sorted(p for p in KUBERNETES_DIR.rglob("*") if p.is_file())]
    missing = []
    for source in sources:
        for ref in REFERENCE.findall(source.read_text()):
            if not (REPO / ref).exists() and not (KUBERNETES_DIR / ref).exists():
                missing.append(f"{source.relative_to(REPO)}: {ref}")
    assert missing == []
