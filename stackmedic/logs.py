"""Logging set-up, done once by each command's main(): logfmt (the default) or JSON lines.

Code logs as ``log.info("cannot listen address=%s error=%s", addr, err)``: free words first,
then ``key=%s`` pairs. The formatters read the pairs from the *format string*, so a value
(an alert label, an error text) is always one escaped value and can never forge a key or a
line, whatever it contains. A message that does not have that shape is logged whole as `msg`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

LEVELS = ("debug", "info", "warn", "error")
FORMATS = ("logfmt", "json")
_NUMERIC = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
_LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error"}
_FIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)=(.*)")
_CONVERSION = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdifrx]")
_BARE = re.compile(r'[^\s"=\\\x00-\x1f\x7f]+')


def _level(record: logging.LogRecord) -> str:
    return _LEVEL_NAMES.get(record.levelno, "error" if record.levelno > logging.ERROR else "debug")


def _timestamp(record: logging.LogRecord) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{whole}.{int(record.msecs):03d}Z"


def fields(record: logging.LogRecord) -> tuple[str, list[tuple[str, Any]]]:
    """The record's free text and its key=value pairs, taken from the format string."""
    fmt, args = record.msg, record.args
    if not isinstance(fmt, str) or not isinstance(args, tuple) or "%(" in fmt:
        return record.getMessage(), []
    words: list[str] = []
    text_args: list[Any] = []
    pairs: list[tuple[str, Any]] = []
    used = 0
    try:
        for word in fmt.split(" "):
            specs = _CONVERSION.findall(word.replace("%%", ""))
            match = _FIELD.fullmatch(word)
            if match:
                key, value_fmt = match.groups()
                if not specs:
                    value: Any = value_fmt.replace("%%", "%")
                elif value_fmt in ("%s", "%d") and isinstance(args[used], int | float):
                    value = args[used]  # a number stays a number in JSON
                else:
                    value = value_fmt % tuple(args[used : used + len(specs)])
                used += len(specs)
                pairs.append((key, value))
            elif pairs:  # free words after the fields: not our shape
                return record.getMessage(), []
            else:
                words.append(word)
                text_args.extend(args[used : used + len(specs)])
                used += len(specs)
        if used != len(args):
            return record.getMessage(), []
        text = " ".join(words)
        text = text % tuple(text_args) if text_args else text.replace("%%", "%")
    except (TypeError, ValueError, IndexError):
        return record.getMessage(), []
    return text, pairs


def _value(value: Any) -> str:
    """One logfmt value: bare when it can be, else quoted with every control character escaped."""
    text = value if isinstance(value, str) else str(value)
    if text and _BARE.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=False)


class LogfmtFormatter(logging.Formatter):
    """`ts=... level=... logger=... msg="..." key=value ...`, one line per record."""

    def format(self, record: logging.LogRecord) -> str:
        text, pairs = fields(record)
        items = [
            ("ts", _timestamp(record)),
            ("level", _level(record)),
            ("logger", record.name),
            ("msg", text),
        ]
        items += pairs
        if record.exc_info:
            items.append(("exc", self.formatException(record.exc_info)))
        return " ".join(f"{k}={_value(v)}" for k, v in items)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the same keys as the logfmt form."""

    def format(self, record: logging.LogRecord) -> str:
        text, pairs = fields(record)
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": _level(record),
            "logger": record.name,
            "msg": text,
        }
        for key, value in pairs:
            out.setdefault(key, value if isinstance(value, int | float | bool) else str(value))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup(level: str = "info", fmt: str = "logfmt") -> None:
    """Log to stderr at `level` (Prometheus' level names) in `fmt` (logfmt or json)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_NUMERIC[level])
