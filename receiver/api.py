"""The HTTP API: the Alertmanager webhook, the audit, breakers, pauses.

Status codes are chosen for Alertmanager: 2xx means handled; 5xx (only when the store
failed) means "send again"; any 4xx is final (bad credentials, body too large, invalid
payload, label values refused by the allow patterns).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, g, jsonify, request
from werkzeug.exceptions import BadRequest, NotFound

from stackmedic.config import duration

from . import breaker, overview, payload, views
from .auth import CHALLENGE, EXPLAINED, FailureLog, check
from .context import current
from .model import ActionState, Decision, Pause
from .store import StoreError

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_PAUSE = 30 * 86400.0
MAX_EPOCH = 999_999_999_999.0
MAX_ID = 2**62  # ids are 64-bit integers in both stores
FILTERS = ("decision", "rule", "target", "state")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# an author: no control character (C0, DEL, C1), and something besides the blanks that
# str.strip() takes off; the OpenAPI document's pattern is this one (tests/receiver/test_webhook.py)
AUTHOR_CONTROLS = r"\x00-\x1f\x7f-\x9f"
AUTHOR_BLANKS = r"\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
AUTHOR = re.compile(f"[^{AUTHOR_CONTROLS}]*[^{AUTHOR_CONTROLS}{AUTHOR_BLANKS}][^{AUTHOR_CONTROLS}]*")
NUMBER = re.compile(r"[0-9.]+([eE][-+]?[0-9]+)?")  # epoch seconds as JSON numbers are written
DURATION = re.compile(
    r"[1-9][0-9]{0,5}s|[1-9][0-9]{0,3}m|([1-9][0-9]?|[1-6][0-9]{2}|7[01][0-9]|720)h|[1-9]d|[12][0-9]d|30d"
)


FAILED_LOGINS = FailureLog()
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def require_auth(view: Callable | None = None, *, basic: bool = False) -> Callable:
    """401 (Bearer challenge only) unless the request carries the configured credentials.

    `basic=True` on the webhook alone: the configured Basic user is Alertmanager's, never an
    operator's, so a browser holding it could not change state even if it were tricked.
    """

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any):
            s = current()
            verdict = check(request.headers.get("Authorization"), s.config.auth, basic)
            if verdict.reason is not None:
                s.metrics.auth_failures.labels(verdict.reason).inc()
                FAILED_LOGINS.record(verdict.reason, request.remote_addr or "-", request.path, verdict.name)
                resp = jsonify(
                    {"error": "authentication required: a bearer token", "reason": EXPLAINED[verdict.reason]}
                )
                resp.status_code = 401
                resp.headers["WWW-Authenticate"] = CHALLENGE
                return resp
            g.token_name = verdict.name
            if request.method in WRITE_METHODS and request.mimetype != "application/json":
                return jsonify({"error": "Content-Type must be application/json"}), 415
            return view(*args, **kwargs)

        return wrapped

    return decorate(view) if view is not None else decorate


@bp.before_request
def refuse_cross_site_writes():
    """Writes come from Alertmanager, curl or scripts, never from a page of another site.

    A browser sends `Origin` with every cross-origin POST and cannot send a JSON
    Content-Type cross-origin without a CORS preflight, which this API never grants: so a
    foreign Origin is 403, and (in require_auth) a body not declared JSON is 415: a plain
    HTML form can only send form or text/plain bodies.
    """
    if request.method not in WRITE_METHODS:
        return None
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        log.warning("cross-origin write refused origin=%r path=%s", origin[:200], request.path)
        return jsonify({"error": "cross-origin request refused"}), 403
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return jsonify({"error": "cross-origin request refused"}), 403
    return None


@bp.errorhandler(StoreError)
def unavailable(exc: StoreError):
    """Any API request the store could not serve: 503, so Alertmanager sends the webhook again."""
    current().metrics.store_errors.inc()
    log.error("store unavailable: %s", exc)
    return jsonify({"error": "store unavailable; send again"}), 503


@bp.post("/alerts")
@require_auth(basic=True)
def alerts():
    """Alertmanager's webhook: every decision is stored before the answer."""
    s = current()
    body = request.get_data(cache=False)  # 413 past MAX_CONTENT_LENGTH
    try:
        notification = payload.parse(body)
    except payload.PayloadError as exc:
        log.warning("invalid webhook payload: %s", exc)
        return jsonify(exc.as_json()), 400
    outcome = s.intake.handle(notification, author=g.get("token_name"))
    answer: dict[str, Any] = {"alerts": len(notification.alerts), "decisions": dict(outcome.decisions)}
    if outcome.rejected:
        return jsonify(
            {"error": "label values refused by the allow patterns", "rejected": outcome.rejected, **answer}
        ), 422
    return jsonify({"status": "ok", **answer})


def _int_arg(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise BadRequest(f"{name}: expected an integer from {low} to {high}")
    return int(raw)


def _time_arg(name: str) -> float | None:
    """RFC 3339 (2026-12-01T08:00:00Z) or epoch seconds; 400 naming the parameter otherwise."""
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = float(raw) if NUMBER.fullmatch(raw) else payload.parse_time(raw)[1]
        if value > MAX_EPOCH:
            raise ValueError(raw)
        return value
    except ValueError:
        raise BadRequest(
            f"{name}: expected an RFC 3339 time (2026-12-01T08:00:00Z) or epoch seconds"
        ) from None


def _filters() -> dict[str, str]:
    """decision, rule, target, state: each checked, so a typo is a 400 rather than an empty list."""
    unknown = sorted(set(request.args) - set(FILTERS) - {"limit", "before", "since", "until"})
    if unknown:
        raise BadRequest(
            f"unknown parameter {unknown[0]!r}: expected {', '.join(FILTERS)}, limit, before, since, until"
        )
    filters = {k: request.args[k] for k in FILTERS if k in request.args}
    for name, allowed in (
        ("decision", [d.value for d in Decision]),
        ("state", [a.value for a in ActionState]),
    ):
        if name in filters and filters[name] not in allowed:
            raise BadRequest(
                f"{name}: unknown value {filters[name][:64]!r}: expected one of {', '.join(allowed)}"
            )
    return filters


@bp.get("/actions")
def actions():
    """The audit, newest first; filters decision, rule, target, state, since, until; paging by `before`."""
    limit = _int_arg("limit", 100, 1, 1000) or 100
    before = _int_arg("before", None, 1, MAX_ID)
    filters = _filters()
    since, until = _time_arg("since"), _time_arg("until")
    rows = current().store.atomic(lambda tx: tx.list_actions(limit, before, filters, since, until))
    return jsonify({"actions": [views.action(r) for r in rows]})


@bp.get("/incidents")
def incidents():
    """Open incidents first (what was tried, what happens next and when), then recent resolved ones."""
    s = current()
    return jsonify(s.store.atomic(lambda tx: overview.incidents(tx, s, s.clock())))


@bp.get("/actions/<int:action_id>")
def action(action_id: int):
    if action_id > MAX_ID:
        raise NotFound(f"no action {action_id}")
    row = current().store.atomic(lambda tx: tx.action(action_id))
    if row is None:
        raise NotFound(f"no action {action_id}")
    return jsonify(views.action(row))


@bp.get("/breakers")
def breakers():
    s = current()
    return jsonify({"breakers": s.store.atomic(lambda tx: overview.breakers(tx, s, s.clock()))})


@bp.post("/breakers/<path:key>/reset")
@require_auth
def reset_breaker(key: str):
    """Close a breaker: counters cleared, the window starts again, the cooldown cleared unless kept."""
    s = current()
    data = _body()
    who, reason = _author(data), _reason(data)
    keep = data.get("keep_cooldown", False)
    if not isinstance(keep, bool):
        raise BadRequest("keep_cooldown: expected true or false")
    now = s.clock()

    def reset(tx):
        row = tx.get_breaker(key)
        if row is None:
            return None
        breaker.reset(row, now, keep_cooldown=keep)
        tx.save_breaker(row)
        tx.clear_escalations(row.rule, row.target)
        said = f"{reason} (cooldown kept)" if keep else reason
        _audit(tx, now, Decision.RESET, row.target, who, said, rule=row.rule)
        return overview.breaker_view(tx, s, row, now)

    view = s.store.atomic(reset)
    if view is None:
        raise NotFound(f"no breaker {key!r}")
    log.warning("breaker reset key=%s author=%s keep_cooldown=%s reason=%r", key, who, keep, reason)
    return jsonify(view)


def _body() -> dict[str, Any]:
    try:
        data = payload.load_json(request.get_data(cache=False))
    except payload.PayloadError:
        data = None
    if not isinstance(data, dict):
        raise BadRequest("expected a JSON object")
    return data


def _target(data: dict[str, Any]) -> str:
    target = data.get("target", "*")
    if not isinstance(target, str) or not 0 < len(target) <= 256 or CONTROL.search(target):
        raise BadRequest("target: expected '*' (everything) or a target name of 1 to 256 characters")
    return target


@bp.get("/pauses")
def pauses():
    s = current()
    rows = s.store.atomic(lambda tx: tx.list_pauses(s.clock()))
    return jsonify({"pauses": [views.pause(r) for r in rows]})


def _pause_duration(value: Any) -> float:
    """Seconds (a number), or 90s, 30m, 2h, 7d: more than 0 and at most 30 days."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and DURATION.fullmatch(value):
        seconds = duration(value)
    else:
        raise BadRequest("duration: required: seconds, or a number with a unit (90s, 30m, 2h, 7d)")
    if not 0 < seconds <= MAX_PAUSE:
        raise BadRequest(f"duration: must be more than 0 and at most {MAX_PAUSE / 86400:g} days")
    return seconds


def _reason(data: dict[str, Any]) -> str:
    reason = data.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 1000:
        raise BadRequest("reason: expected a string of at most 1000 characters")
    return reason


def _author(data: dict[str, Any]) -> str:
    """Who does it: `author`, or the name of the token used when tokens are named."""
    author = data.get("author", g.get("token_name"))
    if author is None:
        raise BadRequest("author: required: who does this (a name or an e-mail address)")
    if not isinstance(author, str) or len(author) > 128 or not AUTHOR.fullmatch(author):
        raise BadRequest("author: expected a name of 1 to 128 characters")
    return author.strip()


def _audit(
    tx: Any, now: float, decision: Decision, target: str, author: str, reason: str, **more: Any
) -> None:
    """An operator's write, kept in the audit beside the decisions it changes."""
    tx.insert_action(created_at=now, decision=decision, target=target, author=author, reason=reason, **more)


@bp.post("/pause")
@require_auth
def pause():
    """Pause actions for a target, or for everything (`*`), until the expiry."""
    s = current()
    data = _body()
    target = _target(data)
    seconds = _pause_duration(data.get("duration"))
    who, reason = _author(data), _reason(data)
    now = s.clock()

    def write(tx):
        tx.set_pause(target, now + seconds, reason, now, who)
        _audit(tx, now, Decision.PAUSE, target, who, reason)

    s.store.atomic(write)
    log.warning("paused target=%s for %.0fs author=%s reason=%r", target, seconds, who, reason)
    row = Pause(target=target, expires_at=now + seconds, reason=reason, created_at=now, author=who)
    return jsonify(views.pause(row))


@bp.post("/resume")
@require_auth
def resume():
    s = current()
    data = _body()
    target = _target(data)
    who, reason = _author(data), _reason(data)
    now = s.clock()

    def write(tx):
        removed = tx.delete_pause(target)
        _audit(tx, now, Decision.RESUME, target, who, reason)
        return removed

    removed = s.store.atomic(write)
    log.warning("resumed target=%s author=%s reason=%r", target, who, reason)
    return jsonify({"target": target, "resumed": removed})


@bp.get("/status")
def status():
    s = current()
    return jsonify(views.status(s))


@bp.get("/openapi.json")
def openapi():
    return jsonify(views.openapi_document())
