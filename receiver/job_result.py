"""What a build did, in one line, from its Jenkins description (the job's JSON result line).

Every `stackmedic-job` prints one JSON line (docs/jobs.md) and the Jenkins job sets the
build's description to it, so the receiver can say, in the audit, the page and its
notifications, which backup a restore used, how old it was, which tables came back, what
was replayed or lost and where the rollback point is. A description that is not such a
line (a person edited it, an older job) is kept as it is and summarised as its first line.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DESCRIPTION = 4000


def parse(description: str | None) -> dict[str, Any] | None:
    """The JSON object of a build description, or None when it is not one."""
    if not description:
        return None
    text = description.strip()
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _age(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return ""
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d"


def _tables(tables: Any) -> str:
    if isinstance(tables, dict):
        names = sorted(tables)
    elif isinstance(tables, list):
        names = [str(t) for t in tables]
    else:
        return ""
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return f"{len(names)} table(s): {shown}"


def summary(description: str | None) -> str:
    """One line for people: what the job reported, or the description's first line."""
    result = parse(description)
    if result is None:
        return (description or "").strip().splitlines()[0][:300] if (description or "").strip() else ""
    parts = []
    status = result.get("status")
    if result.get("restored_from"):
        what = f"restored {result.get('database', '')} from {result['restored_from']}".replace("  ", " ")
        age = _age(result.get("backup_age_seconds"))
        parts.append(f"{what} ({age} old)" if age else what)
    elif status:
        parts.append(f"{result.get('command') or result.get('job') or 'job'} {status}")
    for key, label in (("tables", None), ("replayed_events", "replayed"), ("lost_window", "lost")):
        value = result.get(key)
        if value in (None, "", [], {}):
            continue
        if key == "tables":
            parts.append(_tables(value))
        elif isinstance(value, dict):
            parts.append(f"{label} " + ", ".join(f"{k} {v}" for k, v in value.items()))
        else:
            parts.append(f"{label} {value}")
    if result.get("rollback_point"):
        parts.append(f"rollback point {result['rollback_point']}")
    if result.get("safety_dump"):
        parts.append(f"safety dump {result['safety_dump']}")
    for key in ("error", "reason", "message"):
        if result.get(key):
            parts.append(str(result[key]))
            break
    return "; ".join(parts)[:500]
