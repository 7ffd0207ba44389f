"""`stackmedic-exporter`: flags in the Prometheus style, exit 2 on a bad configuration."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading

import voluptuous as vol

from stackmedic import __version__, cli, webconfig
from stackmedic.config import ConfigError, listen_address

from . import config as exporter_config
from .checks import build_checks
from .collector import ScrapeRunner
from .web import make_app, serve

log = logging.getLogger(__name__)

DEFAULT_LISTEN = ":9877"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.parser(
        "stackmedic-exporter",
        "Prometheus exporter for a small self-hosted stack (containers, processes, "
        "HTTP, MySQL, ports, system, Docker space, backups).",
        config_help="YAML configuration; without it, an embedded default monitors this machine",
    )
    p.add_argument(
        "--web.listen-address",
        dest="listen",
        default=DEFAULT_LISTEN,
        help=f"address to serve /metrics on (default {DEFAULT_LISTEN})",
    )
    p.add_argument(
        "--web.config.file",
        dest="web_config",
        default="",
        help="TLS and basic auth, in the format of Prometheus' exporter-toolkit (docs/metrics.md)",
    )
    return p.parse_args(argv)


def load(config_file: str | None) -> dict:
    """The configuration file's content, or the embedded default."""
    if config_file:
        return exporter_config.load(config_file)
    return exporter_config.default_config()


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas, unless MALLOC_ARENA_MAX says otherwise.

    glibc gives threads that allocate their own arenas (up to 8 per core), each keeping
    freed memory; the check threads would hold about a megabyte that way for nothing.
    """
    if sys.platform != "linux" or "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-8, arenas)  # -8: M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        pass


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args)
    try:
        config = load(args.config_file)
        host, port = listen_address(args.listen)
        web_config = webconfig.load(args.web_config)
    except ConfigError as exc:
        return cli.config_errors(exc)
    except vol.Invalid as exc:  # from listen_address
        print(f"config error: --web.listen-address: {exc.msg}", file=sys.stderr)
        return 2
    if args.config_check:
        print(f"config ok: {args.config_file or '(embedded default)'}")
        return 0
    limit_malloc_arenas()
    checks = build_checks(config)
    runner = ScrapeRunner(checks, config["scrape"]["max_concurrency"], __version__)
    app = make_app(runner, config["scrape"]["timeout"], config["scrape"]["timeout_margin"])
    try:
        server, _ = serve(app, host, port, web_config=web_config, on_failure=runner.login_failed)
    except OSError as exc:
        runner.close()
        return cli.cannot_listen("stackmedic-exporter", args.listen, exc)
    for check in checks:
        check.start()
    # what start-up made lives as long as the process: keep it out of the collector's
    # full passes, which otherwise walk it again and again during scrapes
    gc.collect()
    gc.freeze()
    shown = "localhost" if host in ("0.0.0.0", "::") else host  # noqa: S104 - naming it, not binding
    log.info(
        "listening address=%s checks=%d config=%s metrics=http://%s:%d/metrics",
        args.listen,
        len(checks),
        args.config_file or "(embedded default)",
        shown,
        server.server_address[1],
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("shutting down")
    server.shutdown()
    server.server_close()
    runner.close()
    return 0
