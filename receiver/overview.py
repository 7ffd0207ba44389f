"""The operator's view: open incidents with what was tried and what happens next, breakers with
when the next action may run, and the page's banners. Read in one transaction for the API
(`/api/v1/incidents`, `/api/v1/breakers`) and the page alike.
"""

from __future__ import annotations

from typing import Any

from . import breaker as breaker_mod
from . import lifecycle, views
from .model import IN_FLIGHT_STATES, Action, Breaker, BreakerState, Incident, Pause

STALE_AFTER = 3600.0  # an open incident not sent again for this long is not shown as open
HISTORY = 50


def _pause_for(pauses: list[Pause], target: str) -> Pause | None:
    matching = [p for p in pauses if p.target in (target, "*")]
    return max(matching, key=lambda p: p.expires_at) if matching else None


def _next(
    services: Any,
    incident: Incident,
    last: Action | None,
    row: Breaker | None,
    pause: Pause | None,
    now: float,
) -> tuple[str, str, float | None]:
    """(state, what happens next, when) for an open incident."""
    rule = next((r for r in services.rules if r.name == incident.rule), None)
    if incident.escalated_at is not None or (row is not None and row.state == BreakerState.OPEN):
        key = f"{incident.rule}:{incident.target}"
        return "escalated", f"nothing: a person is needed; then reset the breaker {key}", None
    if pause is not None:
        return "paused", "nothing until the pause ends,", pause.expires_at
    if services.dry_run:
        return "dry_run", "nothing: dry-run mode, Jenkins is never called", None
    if last is not None and last.state in IN_FLIGHT_STATES:
        return "acting", f"waiting for {lifecycle.build_text(last)} to finish", None
    if rule is not None and last is not None:
        step = lifecycle.progress(incident, last, rule.policy, now)
        if step.stage == lifecycle.Stage.SETTLING:
            return "settling", "another action if it still fires at", step.until
        if row is not None and step.stage != lifecycle.Stage.NEW:
            return "waiting", "another action at the alert's next repeat, within the breaker", None
    if rule is not None and row is not None:
        text, at = breaker_mod.next_action(row, rule.policy, last, now)
        return "waiting", f"an action {text}", at
    return "waiting", "an action at the alert's next repeat", None


def incident_views(tx: Any, services: Any, now: float) -> list[dict[str, Any]]:
    """Open incidents, newest first, each with its actions and what happens next."""
    incidents = tx.open_incidents(now - STALE_AFTER)
    tried = tx.incident_actions([i.id for i in incidents])
    by_incident: dict[int, list[Action]] = {}
    for a in tried:
        by_incident.setdefault(a.incident_id, []).append(a)
    breakers = {(b.rule, b.target): b for b in tx.list_breakers()}
    pauses = tx.list_pauses(now)
    out = []
    for i in incidents:
        actions = by_incident.get(i.id, [])
        last = actions[-1] if actions else None
        pause = _pause_for(pauses, i.target)
        state, text, at = _next(services, i, last, breakers.get((i.rule, i.target)), pause, now)
        out.append(
            {
                "id": i.id,
                "rule": i.rule,
                "target": i.target,
                "alertname": i.alertname,
                "summary": i.summary,
                "runbook_url": i.runbook_url,
                "since": views.when(i.starts_ts),
                "heard_at": views.when(i.opened_at),
                "author": i.author,  # the named token whose webhook opened it
                "state": state,
                "state_text": STATE_TEXT[state],
                "attempts": [views.action(a) for a in actions],
                "next": text,
                "next_at": views.when(at),
                "escalated_at": views.when(i.escalated_at),
            }
        )
    return out


STATE_TEXT = {
    "escalated": "escalated: a person is needed",
    "paused": "paused",
    "dry_run": "dry-run",
    "acting": "being fixed",
    "settling": "fixed? checking",
    "waiting": "not fixed yet",
}


def incidents(tx: Any, services: Any, now: float) -> dict[str, Any]:
    return {"open": incident_views(tx, services, now)}


def breaker_view(tx: Any, services: Any, row: Breaker, now: float) -> dict[str, Any]:
    """A breaker, with when the next action for its rule and target may run."""
    out = views.breaker(row)
    rule = next((r for r in services.rules if r.name == row.rule), None)
    text, at = "at the next alert", None
    if rule is not None:
        last = tx.last_action(row.rule, row.target)
        text, at = breaker_mod.next_action(row, rule.policy, last, now)
    out["next_action"] = text.rstrip(",")
    out["next_action_at"] = views.when(at)
    return out


def breakers(tx: Any, services: Any, now: float) -> list[dict[str, Any]]:
    return [breaker_view(tx, services, row, now) for row in tx.list_breakers()]


def banners(services: Any, pauses: list[Pause]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if services.dry_run:
        out.append(
            {"level": "info", "text": "Dry-run mode: decisions are recorded, Jenkins is never called."}
        )
    for p in pauses:
        what = "everything" if p.target == "*" else p.target
        by = f" by {p.author}" if p.author else ""
        why = f": {p.reason}" if p.reason else ""
        until = views.when(p.expires_at)
        out.append({"level": "warning", "text": f"Automation is paused for {what}{by}{why}", "until": until})
    return out


def page(tx: Any, services: Any, now: float, refresh: int) -> dict[str, Any]:
    """Everything the page shows, read at once."""
    pauses = tx.list_pauses(now)
    links = services.config.links
    return {
        "now": views.when(now),
        "refresh": refresh,
        "status": views.status(services),
        "banners": banners(services, pauses),
        "links": [
            (name.capitalize() if name != "alertmanager" else "Alertmanager", links[name])
            for name in ("prometheus", "alertmanager", "grafana")
            if links.get(name)
        ],
        "open": incident_views(tx, services, now),
        "breakers": [b for b in breakers(tx, services, now) if b["state"] != BreakerState.CLOSED],
        "history": [views.action(a) for a in tx.list_actions(HISTORY)],
        "pauses": [views.pause(p) for p in pauses],
    }
