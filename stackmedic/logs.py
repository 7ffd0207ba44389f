"""Logging set-up, done once by each command's main()."""

from __future__ import annotations

import logging
import sys

LEVELS = ("debug", "info", "warn", "error")


def setup(level: str = "info") -> None:
    """Log to stderr as `time level logger: message` at `level` (Prometheus' level names)."""
    numeric = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}[
        level
    ]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
