"""One import name: nothing in the checkout loads exporter/, receiver/ or jobs/ as a top-level module."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOP_LEVEL_IMPORT = re.compile(r"^\s*(from|import)\s+(exporter|receiver|jobs|common)\b", re.M)
TOP_LEVEL_MAIN = re.compile(
    r"""["']-m["'],\s*["'](exporter|receiver|jobs)["']|python3? -m (exporter|receiver|jobs)\b"""
)


def _tracked_python_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True, check=True)
    return [REPO / name for name in out.stdout.split()]


def test_nothing_imports_a_program_folder_as_a_top_level_module():
    offenders = [
        f"{path.relative_to(REPO)}: {m.group(0).strip()}"
        for path in _tracked_python_files()
        for m in [*TOP_LEVEL_IMPORT.finditer(path.read_text()), *TOP_LEVEL_MAIN.finditer(path.read_text())]
    ]
    assert offenders == [], "use stackmedic.exporter, stackmedic.receiver, stackmedic.jobs (docs/design.md)"
