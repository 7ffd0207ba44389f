"""A small validator and expander of five-field cron expressions, as Jenkins reads them.

Only deterministic forms are accepted (numbers, `*`, ranges, lists, `/step`): Jenkins' `H`
spreads jobs by a hash of their name, so no document could say when such a job runs.
`describe()` turns an expression into the words the docs use, and the test compares them.
"""

from __future__ import annotations

from dataclasses import dataclass

FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


class CronError(ValueError):
    """An expression that is not a valid deterministic cron expression."""


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 is folded into 0)
    every_day: bool  # neither day of month nor day of week restricted

    def times(self) -> list[str]:
        """HH:MM of every run on a day it runs, in order."""
        return [f"{h:02d}:{m:02d}" for h in sorted(self.hours) for m in sorted(self.minutes)]


def _number(text: str, name: str, low: int, high: int) -> int:
    if not (text.isascii() and text.isdigit()):
        if text.startswith("H"):
            raise CronError(
                f"{name}: H (hashed) times are not allowed: the docs could not say when the job runs"
            )
        raise CronError(f"{name}: {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name}: {value} is out of range {low}-{high}")
    return value


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = _number(step_text, name, 1, high - low + 1) if step_text else 1
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _number(a, name, low, high), _number(b, name, low, high)
            if start > end:
                raise CronError(f"{name}: range {base} runs backwards")
        else:
            start = _number(base, name, low, high)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


def parse(expression: str) -> Cron:
    """Parse 'minute hour day-of-month month day-of-week'; CronError says what is wrong."""
    parts = expression.split()
    if len(parts) != 5:
        raise CronError(f"expected 5 fields, got {len(parts)} in {expression!r}")
    fields = [_field(p, name, low, high) for p, (name, low, high) in zip(parts, FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in fields[4])
    return Cron(fields[0], fields[1], fields[2], fields[3], weekdays, parts[2] == "*" and parts[4] == "*")


def describe(expression: str) -> str:
    """'30 9-19/2 * * *' -> 'daily at 09:30, 11:30, 13:30, 15:30, 17:30 and 19:30'."""
    cron = parse(expression)
    if cron.months != frozenset(range(1, 13)):
        raise CronError("only schedules that run in every month can be described")
    times = cron.times()
    at = times[0] if len(times) == 1 else ", ".join(times[:-1]) + " and " + times[-1]
    if cron.every_day:
        return f"daily at {at}"
    if cron.days == frozenset(range(1, 32)):
        days = ", ".join(DAY_NAMES[d] for d in sorted(cron.weekdays))
        return f"on {days} at {at}"
    raise CronError("schedules restricted by day of month cannot be described")
