"""What the three programs' command lines share: Prometheus-style flags, errors, listening.

Each program builds its parser with `parser(prog, description)`, which adds
`--config.file`, `--config.check`, `--log.level`, `--log.format` and `--version`, and calls
`setup_logging(args)` once. Errors a user must read go to stderr as one line each.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from . import __version__, logs
from .config import ConfigError

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def parser(
    prog: str,
    description: str,
    config_help: str = "YAML configuration file",
    config_default: str | None = None,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """An ArgumentParser with the flags every stackmedic program has."""
    p = argparse.ArgumentParser(prog=prog, description=description, **kwargs)
    add_common_flags(p, config_help, config_default)
    return p


def add_common_flags(
    p: argparse.ArgumentParser,
    config_help: str = "YAML configuration file",
    config_default: str | None = None,
    suppress: bool = False,
) -> None:
    """Add the shared flags to `p`; `suppress` leaves defaults to the parent parser (subcommands)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    p.add_argument("--config.file", dest="config_file", default=default(config_default), help=config_help)
    p.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        default=default(False),
        help="validate the configuration, print the result and exit (0 valid, 2 invalid)",
    )
    p.add_argument("--log.level", dest="log_level", choices=logs.LEVELS, default=default("info"))
    p.add_argument(
        "--log.format",
        dest="log_format",
        choices=logs.FORMATS,
        default=default("logfmt"),
        help="logfmt (default) or json, one record per line on stderr",
    )
    if not suppress:
        p.add_argument("--version", action="version", version=f"{p.prog} {__version__}")


def setup_logging(args: argparse.Namespace) -> None:
    """Configure logging from the parsed flags, once, before anything logs."""
    logs.setup(getattr(args, "log_level", "info"), getattr(args, "log_format", "logfmt"))


def config_errors(exc: ConfigError) -> int:
    """Print every configuration problem, one line each, and return the exit status 2."""
    for line in exc.lines():
        print(line, file=sys.stderr)
    return EXIT_CONFIG


def load_or_exit(load: Callable[[], T]) -> T | int:
    """`load()`, or the exit status 2 after printing its ConfigError's problems."""
    try:
        return load()
    except ConfigError as exc:
        return config_errors(exc)


def cannot_listen(prog: str, address: str, exc: OSError) -> int:
    """One line saying why the server cannot listen, and the exit status 1 (no traceback)."""
    reason = exc.strerror or str(exc)
    print(f"{prog}: cannot listen on {address}: {reason}", file=sys.stderr)
    return EXIT_FAILED
