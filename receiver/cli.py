"""stackmedic-receiver: Alertmanager webhooks to Jenkins builds."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

import voluptuous as vol

from stackmedic import cli, webconfig
from stackmedic.config import ConfigError, listen_address

from . import config as config_mod
from . import rulecheck
from .app import create_app
from .replicas import ReplicaNameTaken, StoreClock
from .server import serve
from .store import StoreError

log = logging.getLogger("receiver")


def _parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "stackmedic-receiver", __doc__ or "", config_help="YAML configuration (none: dry-run, no rules)"
    )
    p.add_argument(
        "--web.listen-address",
        dest="listen",
        default=config_mod.DEFAULT_LISTEN,
        help="host:port to serve on (default %(default)s)",
    )
    p.add_argument(
        "--web.config.file",
        dest="web_config",
        default="",
        help="TLS and basic auth for the page, the read API and /metrics, in the format of "
        "Prometheus' exporter-toolkit (the API's bearer token is accepted too)",
    )
    p.add_argument(
        "--rules.dir",
        dest="rules_dir",
        help="with --config.check: Prometheus rule files; name the receiver rules no alert in them can match",
    )
    return p


# Test-only: shift this process's own clock by this many seconds (e.g. 90, -90), to show that
# skew between replicas is harmless: time shared between replicas is the store's (StoreClock).
CLOCK_SKEW_ENV = "STACKMEDIC_RECEIVER_TEST_CLOCK_SKEW"


def _skewed_clock() -> StoreClock | None:
    """The local clock shifted by $STACKMEDIC_RECEIVER_TEST_CLOCK_SKEW seconds, None when unset."""
    skew = float(os.environ.get(CLOCK_SKEW_ENV) or 0)
    if not skew:
        return None
    log.warning("test hook: the local clock is shifted by %+.1fs (%s)", skew, CLOCK_SKEW_ENV)
    local: Callable[[], float] = lambda: time.time() + skew  # noqa: E731
    return StoreClock(local=local)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _check(path: str, config: config_mod.Config, rules_dir: str | None) -> int:
    """--config.check: the file is valid; with --rules.dir, every rule can match a shipped alert."""
    if rules_dir:
        try:
            problems = rulecheck.unmatched(config.rules, rules_dir) + rulecheck.unhandled(
                config.rules, rules_dir
            )
        except rulecheck.RulesDirError as exc:
            print(f"config error: {exc}", file=sys.stderr)
            return 2
        if problems:
            return cli.config_errors(ConfigError(problems))
    checked = f", each matched by an alert in {rules_dir}" if rules_dir else ""
    print(f"{path}: configuration ok, {len(config.rules)} rule(s){checked}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cli.setup_logging(args)
    try:
        host, port = listen_address(args.listen)
    except vol.Invalid as exc:
        print(f"config error: --web.listen-address: {exc.error_message}", file=sys.stderr)
        return 2
    try:
        web_config = webconfig.load(args.web_config)
    except ConfigError as exc:
        return cli.config_errors(exc)
    if args.config_file:
        try:
            config = config_mod.load(args.config_file)
        except ConfigError as exc:
            return cli.config_errors(exc)
        if args.config_check:
            return _check(args.config_file, config, args.rules_dir)
    elif args.config_check:
        print("no --config.file: the built-in configuration (dry-run, no rules) is valid")
        return 0
    else:
        token = secrets.token_urlsafe(24)
        config = config_mod.unconfigured(token)
        print("stackmedic-receiver: no --config.file, so dry-run mode with no rules")
        print(f"webhook token (Authorization: Bearer ...): {token}", flush=True)
    try:
        app = create_app(config, clock=_skewed_clock())
    except (ReplicaNameTaken, StoreError) as exc:
        print(f"stackmedic-receiver: {exc}", file=sys.stderr)
        return 1
    services = app.extensions["stackmedic"]
    try:
        server = serve(app, config, web_config, host, port)
    except OSError as exc:
        services.close()
        return cli.cannot_listen("stackmedic-receiver", args.listen, exc)
    signal.signal(signal.SIGTERM, _stop)
    # what start-up created lives as long as the process: keep it out of the collector's
    # full passes, which otherwise pause every thread now and then for tens of ms
    gc.freeze()
    mode = "dry-run" if services.dry_run else "live"
    log.info(
        "listening address=%s:%s mode=%s rules=%d tls=%s",
        host,
        server.server_address[1],
        mode,
        len(config.rules),
        web_config.tls is not None,
    )
    try:
        threading.Event().wait()
    except (KeyboardInterrupt, SystemExit):
        log.info("stopping")
    finally:
        server.shutdown()
        server.server_close()
        services.close()
    return 0
