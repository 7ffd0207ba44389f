"""`stackmedic-job`: the programs Jenkins runs.

    stackmedic-job [--config.file F] [--log.level L] SUBCOMMAND ...
      backup  --database DB            dump, checksum, manifest
      verify  --database DB [--file NAME | --all]
      restore --database DB [--tables T,.. | --whole] [--file NAME] [--until TIME] [--dry-run]
      rollback --database DB [--point NAME]
      prune   (--database DB | --all-databases) [--dry-run]
      list    [--database DB] [--json]
      start | stop SERVICE
      restart SERVICE [--rollback] [--no-auto-rollback]

Each job prints one JSON line on stdout (what it did) and, when it fails or refuses, one
line on stderr saying why. Exit statuses: see jobs/errors.py and docs/jobs.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from stackmedic import cli
from stackmedic.config import ConfigError

from . import config as jobs_config
from . import errors
from .errors import JobError

log = logging.getLogger(__name__)

CONFIG_ENV = "STACKMEDIC_JOBS_CONFIG"
DEFAULT_CONFIG = "/etc/stackmedic/jobs.yml"
SUBCOMMANDS = ("backup", "verify", "restore", "rollback", "prune", "list", "start", "stop", "restart")


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    cli.add_common_flags(
        parser,
        config_help=f"configuration file (default: ${CONFIG_ENV} or {DEFAULT_CONFIG})",
        config_default=os.environ.get(CONFIG_ENV, DEFAULT_CONFIG),
        suppress=suppress,
    )


def _lock_wait(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lock.wait",
        dest="lock_wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another job's lock before refusing (default 0: refuse at once)",
    )


def _table_list(value: str) -> list[str]:
    from .config import TABLE_RE

    tables = [t.strip() for t in value.split(",") if t.strip()]
    bad = [t for t in tables if not TABLE_RE.fullmatch(t)]
    if bad or not tables:
        raise argparse.ArgumentTypeError(f"invalid table name {(bad or [value])[0]!r}")
    return tables


def _utc_time(value: str):
    from datetime import UTC, datetime

    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise argparse.ArgumentTypeError(f"invalid time {value!r}: give UTC as 2026-11-24T09:30:00Z")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; global flags work before or after the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    epilog = "exit statuses: " + ", ".join(f"{code} {meaning}" for code, meaning in errors.EXIT_CODES.items())
    parser = argparse.ArgumentParser(
        prog="stackmedic-job", description=__doc__.split("\n\n")[0], epilog=epilog
    )
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")

    p = sub.add_parser("backup", parents=[common], help="dump a database, with checksum and manifest")
    p.add_argument("--database", required=True)
    _lock_wait(p)

    p = sub.add_parser(
        "verify", parents=[common], help="check backups by loading them into a scratch database"
    )
    p.add_argument("--database", required=True)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--file", help="one backup by its file name (default: the newest)")
    which.add_argument("--all", action="store_true", help="every complete backup")
    p.add_argument(
        "--accept",
        action="store_true",
        help="with --file: trust it although tables or rows dropped (a person decided the drop was intended)",
    )
    _lock_wait(p)

    p = sub.add_parser(
        "restore", parents=[common], help="rebuild what is broken from a backup (+ binary logs), swap it in"
    )
    p.add_argument("--database", required=True)
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--tables", type=_table_list, help="only these tables (default: required tables missing or empty)"
    )
    which.add_argument("--whole", action="store_true", help="the whole database")
    p.add_argument("--file", help="this backup (or safety/NAME, a safety dump) instead of the newest")
    p.add_argument(
        "--until",
        type=_utc_time,
        metavar="TIME",
        help="replay binary logs up to this UTC time (2026-11-24T09:30:00Z)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="say what would be restored from which backup; change nothing"
    )
    _lock_wait(p)

    p = sub.add_parser("rollback", parents=[common], help="swap back the tables the last restore displaced")
    p.add_argument("--database", required=True)
    p.add_argument("--point", help="this rollback point (default: the newest)")
    _lock_wait(p)

    p = sub.add_parser("prune", parents=[common], help="apply the retention policy")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--database")
    which.add_argument("--all-databases", action="store_true")
    p.add_argument("--dry-run", action="store_true")
    _lock_wait(p)

    p = sub.add_parser("list", parents=[common], help="complete backups, newest first")
    p.add_argument("--database")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    for name in ("start", "stop"):
        p = sub.add_parser(name, parents=[common], help=f"{name} a configured service's containers")
        p.add_argument("service", metavar="SERVICE")
    p = sub.add_parser(
        "restart", parents=[common], help="restart a service, rolling back to the known-good image"
    )
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("--rollback", action="store_true", help="go back to the last known-good image now")
    p.add_argument(
        "--no-auto-rollback",
        dest="auto_rollback",
        action="store_false",
        help="leave a failed restart as it is",
    )
    return parser


class Emitter:
    """Writes the job's JSON result line(s) on stdout and remembers whether it did."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, record: dict[str, Any]) -> None:
        self.count += 1
        sys.stdout.write(json.dumps(record, sort_keys=False) + "\n")
        sys.stdout.flush()


def emit(record: dict[str, Any]) -> None:
    """The job's one line on stdout."""
    Emitter()(record)


def failure_record(
    command: str, args: argparse.Namespace, exc: BaseException, exit_code: int
) -> dict[str, Any]:
    """The result line of a job that failed before it could say more."""
    refused = exit_code in (errors.SERVER_DOWN, errors.NO_VALID_BACKUP, errors.LOCKED, errors.USAGE)
    record: dict[str, Any] = {"status": "refused" if refused else "failed", "command": command}
    for key in ("database", "service"):
        if getattr(args, key, None):
            record[key] = getattr(args, key)
    record["error"] = str(exc)
    record["exit_code"] = exit_code
    return record


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the exit status (jobs/errors.py)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if not exc.code:
            return errors.OK  # --help, --version
        words = list(sys.argv[1:] if argv is None else argv)
        command = next((w for w in words if w in SUBCOMMANDS), None)
        if command:  # a job's one result line, even for arguments argparse refused (stderr says which)
            Emitter()(
                {
                    "status": "refused",
                    "command": command,
                    "error": "invalid arguments",
                    "exit_code": errors.USAGE,
                }
            )
        return errors.USAGE
    cli.setup_logging(args)
    try:
        config = jobs_config.load(args.config_file)
    except ConfigError as exc:
        if args.command and not args.config_check:  # a job's one result line, even for a bad config
            Emitter()(
                {
                    "status": "refused",
                    "command": args.command,
                    "error": "invalid configuration",
                    "exit_code": errors.USAGE,
                }
            )
        return cli.config_errors(exc)
    if args.config_check:
        sys.stderr.write(f"config ok: {args.config_file}\n")
        return errors.OK
    if not args.command:
        parser.print_usage(sys.stderr)
        return errors.USAGE
    from . import commands  # the commands pull in docker and pymysql only when needed

    out = Emitter()
    try:
        return commands.run(args, config, out)
    except JobError as exc:
        sys.stderr.write(f"stackmedic-job {args.command}: {exc}\n")
        if not out.count:
            out(failure_record(args.command, args, exc, exc.exit_code))
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the edge: one line, one status
        log.exception("unexpected error command=%s", args.command)
        sys.stderr.write(f"stackmedic-job {args.command}: unexpected error: {exc}\n")
        if not out.count:
            out(failure_record(args.command, args, exc, errors.FAILED))
        return errors.FAILED
