"""The Alertmanager webhook body (version "4"): validated, unknown fields accepted.

Only what the receiver relies on is checked: each alert's own `status`, `labels`
(strings), `startsAt` (RFC 3339) and `fingerprint`. A problem becomes a PayloadError
listing every `(path, message)`, which the API answers as 400.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from stackmedic.config import format_path

MAX_ALERTS = 1000
RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)
GO_ZERO_YEAR = 1


class PayloadError(Exception):
    """An invalid webhook body; `problems` is a list of (path, message)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{p or '(body)'}: {m}" for p, m in problems))

    def as_json(self) -> dict[str, Any]:
        return {
            "error": "invalid payload",
            "problems": [{"path": p or "(body)", "message": m} for p, m in self.problems],
        }


@dataclass(frozen=True)
class Alert:
    """One alert of a notification, as the receiver uses it."""

    status: str
    labels: dict[str, str]
    fingerprint: str
    starts_at: str  # canonical UTC, nanoseconds: part of the incident key
    starts_ts: float
    ends_ts: float | None = None
    annotations: dict[str, Any] = field(default_factory=dict)
    generator_url: str = ""


@dataclass(frozen=True)
class Notification:
    receiver: str
    status: str
    group_key: str
    alerts: list[Alert]


def parse_time(text: str) -> tuple[str, float, bool]:
    """RFC 3339 -> (canonical UTC text with nanoseconds, epoch seconds, is Go's zero time)."""
    m = RFC3339.fullmatch(text)
    if not m:
        raise ValueError("expected an RFC 3339 time such as 2024-05-01T10:00:00.123Z")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    nanos = int((m.group(7) or "").ljust(9, "0"))
    zone = m.group(8)
    if zone in ("Z", "z"):
        offset = timedelta(0)
    else:
        sign = 1 if zone[0] == "+" else -1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        local = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"invalid time: {exc}") from None
    zero = year == GO_ZERO_YEAR and not (month - 1 or day - 1 or hour or minute or second or nanos)
    try:
        utc = local - offset
    except OverflowError:
        # before year 1 or after 9999 once in UTC (0001-01-01T00:30:00+01:00): RFC 3339 and
        # the OpenAPI document allow it, datetime cannot hold it; for an alert it is the
        # start or the end of time
        utc, nanos = (datetime.min, 0) if offset > timedelta(0) else (datetime.max, 999_999_999)
        utc = utc.replace(tzinfo=UTC, microsecond=0)
    # the year written with four digits: strftime's %Y gives "1" for year 1 on glibc
    canonical = f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}.{nanos:09d}Z"
    return canonical, utc.timestamp() + nanos / 1e9, zero


def _fingerprint(labels: dict[str, str]) -> str:
    text = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _alert(raw: Any, path: list, problems: list) -> Alert | None:
    start = len(problems)

    def bad(sub: list, message: str) -> None:
        problems.append((format_path(path + sub), message))

    if not isinstance(raw, dict):
        bad([], "expected an object")
        return None
    status = raw.get("status")
    if status not in ("firing", "resolved"):
        bad(["status"], "expected 'firing' or 'resolved'")
    labels = raw.get("labels")
    if not isinstance(labels, dict):
        bad(["labels"], "expected an object of strings")
        labels = {}
    for name, value in labels.items():
        if not isinstance(value, str):
            bad(["labels", name], "expected a string")
    annotations = raw.get("annotations", {})
    if not isinstance(annotations, dict):
        bad(["annotations"], "expected an object")
    fingerprint = raw.get("fingerprint")
    if "fingerprint" in raw and (not isinstance(fingerprint, str) or not FINGERPRINT.fullmatch(fingerprint)):
        # Alertmanager's are 16 hex digits; a newline here could forge a log line
        bad(["fingerprint"], "expected 1 to 128 letters, digits, '-' or '_'")
    times: dict[str, tuple[str, float, bool]] = {}
    for key in ("startsAt", "endsAt"):
        value = raw.get(key)
        if key == "endsAt" and key not in raw:
            continue
        if not isinstance(value, str):
            bad([key], "expected an RFC 3339 time (string)")
            continue
        try:
            times[key] = parse_time(value)
        except ValueError as exc:
            bad([key], str(exc))
    generator = raw.get("generatorURL", "")
    if len(problems) > start:
        return None
    starts, ends = times["startsAt"], times.get("endsAt")
    return Alert(
        status=str(status),
        labels=dict(labels),
        fingerprint=fingerprint or _fingerprint(labels),
        starts_at=starts[0],
        starts_ts=starts[1],
        ends_ts=None if ends is None or ends[2] else ends[1],
        annotations=annotations,
        generator_url=generator if isinstance(generator, str) else "",
    )


MAX_DEPTH = 32
FINGERPRINT = re.compile(r"[A-Za-z0-9_-]{1,128}")
# json.loads turns "\\ud800" into a lone surrogate: no store, log or answer can encode it as
# UTF-8, so it would fail deep in a write as a 500, which Alertmanager sends again forever
SURROGATE = re.compile("[\ud800-\udfff]")


def load_json(body: bytes) -> Any:
    """JSON no deeper than MAX_DEPTH and with Unicode strings only: anything else is a 400,
    never a RecursionError's or an encoder's 500 (which Alertmanager would send again forever)."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise PayloadError([("", f"nested deeper than {MAX_DEPTH} levels")]) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError([("", f"not valid JSON: {exc}")]) from None
    level = [data]
    for _ in range(MAX_DEPTH):
        _unicode_only(level)
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in ((*item, *item.values()) if isinstance(item, dict) else item)
        ]
        if not level:
            return data
    if any(isinstance(item, dict | list) for item in level):
        raise PayloadError([("", f"nested deeper than {MAX_DEPTH} levels")])
    _unicode_only(level)
    return data


def _unicode_only(items: list[Any]) -> None:
    if any(isinstance(item, str) and SURROGATE.search(item) for item in items):
        raise PayloadError([("", "a string holds a lone UTF-16 surrogate escape: not Unicode text")])


def parse(body: bytes) -> Notification:
    """Parse and validate a webhook body; PayloadError names every problem."""
    data = load_json(body)
    if not isinstance(data, dict):
        raise PayloadError([("", "expected a JSON object")])
    problems: list[tuple[str, str]] = []
    version = data.get("version", "4")
    if version != "4":
        problems.append(("version", f"unsupported version {version!r}: expected '4'"))
    alerts_raw = data.get("alerts")
    if not isinstance(alerts_raw, list):
        problems.append(("alerts", "required: a list of alerts"))
        alerts_raw = []
    elif len(alerts_raw) > MAX_ALERTS:
        problems.append(("alerts", f"more than {MAX_ALERTS} alerts"))
        alerts_raw = []
    for key in ("receiver", "status", "groupKey"):
        if key in data and not isinstance(data[key], str):
            problems.append((key, "expected a string"))
    alerts = [_alert(a, ["alerts", i], problems) for i, a in enumerate(alerts_raw)]
    if problems:
        raise PayloadError(problems)
    return Notification(
        receiver=data.get("receiver", ""),
        status=data.get("status", ""),
        group_key=data.get("groupKey", ""),
        alerts=[a for a in alerts if a is not None],
    )
