"""For people and Prometheus: the page of recent actions, /metrics, health and readiness."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import overview
from .context import current
from .store import StoreError

# the page's script and style are files (the Content-Security-Policy allows no inline script)
bp = Blueprint("web", __name__, static_folder="static", static_url_path="/static")


@bp.get("/")
def index():
    """Open incidents first, then breakers and history; `?refresh=N` seconds (default 10)."""
    s = current()
    raw = request.args.get("refresh", "10")
    refresh = int(raw) if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 3600 else 10
    try:
        page = s.store.atomic(lambda tx: overview.page(tx, s, s.clock(), refresh))
    except StoreError as exc:
        return Response(f"store unavailable: {exc}\n", 503, mimetype="text/plain")
    return render_template("index.html", page=page)


@bp.get("/metrics")
def metrics():
    return Response(generate_latest(current().registry), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/-/healthy")
def healthy():
    return Response("Healthy.\n", mimetype="text/plain")


@bp.get("/-/ready")
def ready():
    """Ready when the store answers: a webhook would be accepted."""
    try:
        current().store.ping()
    except StoreError as exc:
        return Response(f"Not ready: {exc}\n", 503, mimetype="text/plain")
    return Response("Ready.\n", mimetype="text/plain")
