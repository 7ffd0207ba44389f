"""For people and Prometheus: the page of recent actions, /metrics, health and readiness."""

from __future__ import annotations

from flask import Blueprint, Response, render_template
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import views
from .context import current
from .store import StoreError

bp = Blueprint("web", __name__)


@bp.get("/")
def index():
    """Recent decisions, breakers and pauses."""
    s = current()
    try:
        rows, breakers, pauses = s.store.atomic(
            lambda tx: (tx.list_actions(50), tx.list_breakers(), tx.list_pauses(s.clock()))
        )
    except StoreError as exc:
        return Response(f"store unavailable: {exc}\n", 503, mimetype="text/plain")
    return render_template(
        "index.html",
        status=views.status(s),
        actions=[views.action(r) for r in rows],
        breakers=[views.breaker(b) for b in breakers],
        pauses=[views.pause(p) for p in pauses],
    )


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
