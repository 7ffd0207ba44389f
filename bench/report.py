"""Where every benchmark writes its results: its own section of docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(name: str, text: str, doc: Path = DOC) -> None:
    """Replace what stands between `<!-- BEGIN name -->` and `<!-- END name -->` with `text`."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    content = doc.read_text()
    if begin not in content or end not in content:
        raise ValueError(f"{doc} has no section {name!r} (markers {begin} ... {end})")
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{begin}\n{text.strip()}\n{end}{tail}")
