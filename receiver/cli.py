"""stackmedic-receiver: Alertmanager webhooks to Jenkins builds, served by waitress."""

from __future__ import annotations

import argparse
import gc
import logging
import secrets
import signal
import sys
from types import FrameType

import voluptuous as vol
import waitress

from stackmedic import cli
from stackmedic.config import ConfigError, listen_address

from . import config as config_mod
from .app import create_app

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
    return p


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cli.setup_logging(args)
    try:
        host, port = listen_address(args.listen)
    except vol.Invalid as exc:
        print(f"config error: --web.listen-address: {exc.error_message}", file=sys.stderr)
        return 2
    if args.config_file:
        try:
            config = config_mod.load(args.config_file)
        except ConfigError as exc:
            return cli.config_errors(exc)
        if args.config_check:
            print(f"{args.config_file}: configuration ok, {len(config.rules)} rule(s)")
            return 0
    elif args.config_check:
        print("no --config.file: the built-in configuration (dry-run, no rules) is valid")
        return 0
    else:
        token = secrets.token_urlsafe(24)
        config = config_mod.unconfigured(token)
        print("stackmedic-receiver: no --config.file, so dry-run mode with no rules")
        print(f"webhook token (Authorization: Bearer ...): {token}", flush=True)
    app = create_app(config)
    services = app.extensions["stackmedic"]
    try:
        server = waitress.create_server(
            app,
            host=host,
            port=port,
            threads=config.threads,
            max_request_body_size=config.max_body_bytes + 1,
            ident="stackmedic-receiver",
        )
    except OSError as exc:
        services.close()
        return cli.cannot_listen("stackmedic-receiver", args.listen, exc)
    signal.signal(signal.SIGTERM, _stop)
    # what start-up created lives as long as the process: keep it out of the collector's
    # full passes, which otherwise pause every thread now and then for tens of ms
    gc.freeze()
    mode = "dry-run" if services.dry_run else "live"
    log.info("listening address=%s:%s mode=%s rules=%d", host, server.effective_port, mode, len(config.rules))
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        log.info("stopping")
    finally:
        server.close()
        services.close()
    return 0
