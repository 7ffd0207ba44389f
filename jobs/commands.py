"""One function per subcommand: turn arguments into a job, and its outcome into one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from . import errors
from .catalog import complete_backups
from .config import JobsConfig
from .errors import ContainerError, JobError, UsageError

Emit = Callable[[dict[str, Any]], None]


def cmd_backup(args: argparse.Namespace, config: JobsConfig, emit: Emit) -> int:
    from .backup import run_backup

    database = config.database(args.database)
    backup = run_backup(config, database, lock_wait=args.lock_wait)
    m = backup.manifest
    emit(
        {
            "command": "backup",
            "database": database.name,
            "status": "ok",
            "file": m.file,
            "size_bytes": m.size_bytes,
            "sha256": m.sha256,
            "tables": len(m.tables),
            "rows": sum(m.tables.values()),
        }
    )
    return errors.OK


def cmd_verify(args: argparse.Namespace, config: JobsConfig, emit: Emit) -> int:
    from .verify_job import run_verify

    database = config.database(args.database)
    if args.accept and not args.file:
        raise UsageError("--accept needs --file: a person accepts one backup they looked at")
    report = run_verify(
        config, database, file=args.file, every=args.all, lock_wait=args.lock_wait, accept=args.accept
    )
    emit(report.to_json())
    if report.error:
        raise JobError(report.error)
    return errors.OK


def cmd_restore(args: argparse.Namespace, config: JobsConfig, emit: Emit) -> int:
    from .restore import RestoreOptions, RestoreReport, run_restore

    database = config.database(args.database)
    report = RestoreReport(database=database.name, dry_run=args.dry_run)
    options = RestoreOptions(args.tables, args.whole, args.file, args.until, args.dry_run, args.lock_wait)
    return _report(emit, report, lambda: run_restore(config, database, report, options))


def cmd_rollback(args: argparse.Namespace, config: JobsConfig, emit: Emit) -> int:
    from .restore import RestoreReport
    from .rollback import run_rollback

    database = config.database(args.database)
    report = RestoreReport(database=database.name)
    report.command = "rollback"
    return _report(emit, report, lambda: run_rollback(database, report, args.point, args.lock_wait))


def _report(emit: Emit, report, work: Callable[[], object]) -> int:
    """Run `work`; its report is the one line, on failure too (status, error, exit_code)."""
    try:
        work()
    except Exception as exc:
        code = exc.exit_code if isinstance(exc, JobError) else errors.FAILED
        refused = code in (errors.SERVER_DOWN, errors.NO_VALID_BACKUP, errors.LOCKED, errors.USAGE)
        report.status = "refused" if refused and not report.restored else "failed"
        report.error = str(exc)
        emit({**report.to_json(), "exit_code": code})
        raise
    emit({**report.to_json(), "exit_code": errors.OK})
    return errors.OK


def cmd_prune(args: argparse.Namespace, config: JobsConfig, emit: Emit) -> int:
    from .prune import run_prune

    databases = list(config.databases.values()) if args.all_databases else [config.database(args.database)]
    results, refused = [], []
    for database in databases:
        report = run_prune(database, dry_run=args.dry_run, lock_wait=args.lock_wait)
        one: dict[str, Any] = {
            "database": database.name,
            "status": "refused" if report.refused else "dry-run" if args.dry_run else "ok",
        }
        if report.refused:
            one["error"] = f"prune of {database.name} refused: {report.refused}"
            refused.append(one["error"])
        one.update(
            kept=report.kept, deleted=report.deleted, leftovers=report.leftovers, orphans=report.orphans
        )
        results.append(one)
    if args.all_databases:
        line: dict[str, Any] = {
            "command": "prune",
            "status": "refused" if refused else results[0]["status"] if results else "ok",
        }
        if refused:
            line["error"] = "; ".join(refused)
        line["databases"] = results
    else:
        line = {"command": "prune", **results[0]}
    emit(line)
    if refused:
        raise JobError("; ".join(refused))
    return errors.OK


def _list_state(backup, now, skew: float) -> str:
    from .known_good import future_dated_reason

    m = backup.manifest
    if future_dated_reason(backup, now, skew):
        return "FUTURE-DATED (ignored)"
    return {
        "unverified": "unverified",
        "ok": "verified",
        "failed": f"FAILED ({m.verified.reason if m.verified else ''})",
        "suspicious": f"SUSPICIOUS ({m.status_reason})",
    }[m.verify_status]


def cmd_list(args: argparse.Namespace, config: JobsConfig, emit: Emit) -> int:
    """Complete backups, newest first: a table, or with --json one line holding them all."""
    from .known_good import utcnow

    databases = [config.database(args.database)] if args.database else list(config.databases.values())
    now = utcnow()
    listed = []
    for database in databases:
        for backup in complete_backups(database.directory, database.name):
            state = _list_state(backup, now, database.trust.future_skew)
            listed.append({**backup.manifest.to_json(), "verify_status": backup.manifest.verify_status})
            if state.startswith("FUTURE"):
                listed[-1]["verify_status"] = "future-dated"
            if not args.json:
                m = backup.manifest
                sys.stdout.write(f"{m.file}  {m.to_json()['created']}  {m.size_bytes:>12} B  {state}\n")
    if args.json:
        line: dict[str, Any] = {"command": "list", "status": "ok"}
        if args.database:
            line["database"] = args.database
        emit({**line, "backups": listed})
    return errors.OK


def _controller(config: JobsConfig):
    import docker

    from .containers import ServiceController
    from .known_good import KnownGood

    try:
        client = docker.DockerClient(base_url=config.docker_url) if config.docker_url else docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise ContainerError(f"docker engine unreachable: {exc}") from None
    return ServiceController(client, KnownGood(config.state_dir))


def cmd_service(args: argparse.Namespace, config: JobsConfig, emit: Emit) -> int:
    service = config.service(args.service)
    controller = _controller(config)
    try:
        if args.command == "start":
            result = controller.start(service)
        elif args.command == "stop":
            result = controller.stop(service)
        else:
            result = controller.restart(service, rollback=args.rollback, auto_rollback=args.auto_rollback)
    except JobError as exc:
        emit({"job": args.command, "service": service.name, "status": "failed", "message": str(exc)})
        raise
    finally:
        controller.client.close()
    status = "rolled-back" if result.exit_code == errors.ROLLED_BACK else "ok"
    emit({"job": args.command, "service": service.name, "status": status, "message": result.message})
    if result.exit_code:
        raise JobError(result.message, result.exit_code)
    return errors.OK


COMMANDS: dict[str, Callable[[argparse.Namespace, JobsConfig, Emit], int]] = {
    "backup": cmd_backup,
    "verify": cmd_verify,
    "restore": cmd_restore,
    "rollback": cmd_rollback,
    "prune": cmd_prune,
    "list": cmd_list,
    "start": cmd_service,
    "stop": cmd_service,
    "restart": cmd_service,
}


def run(args: argparse.Namespace, config: JobsConfig, emit: Emit) -> int:
    """Dispatch to the subcommand's function."""
    return COMMANDS[args.command](args, config, emit)
