"""The Alertmanager configuration the Prometheus Operator makes of an AlertmanagerConfig, as its
documentation describes it (default matcher strategy `OnNamespace`), so real amtool can check
and route it: the object's route under the cluster's root route, matched on
`namespace="<the object's namespace>"` and with `continue: true` (the cluster's own routes still
see every alert); receivers named `<namespace>/<object>/<receiver>`; both sides of every inhibit
rule matched on the namespace too. Secrets become a credentials file; nothing is sent."""

from __future__ import annotations

from typing import Any

CLUSTER_DEFAULT = "cluster-default"
ROUTE_KEYS = {
    "receiver": "receiver",
    "groupBy": "group_by",
    "groupWait": "group_wait",
    "groupInterval": "group_interval",
    "repeatInterval": "repeat_interval",
    "continue": "continue",
}


def _matchers(items: list[dict[str, str]]) -> list[str]:
    return [f'{m["name"]}{m.get("matchType", "=")}"{m["value"]}"' for m in items]


def _route(route: dict[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in route.items():
        if key == "receiver":
            out["receiver"] = prefix + value
        elif key == "matchers":
            out["matchers"] = _matchers(value)
        elif key == "routes":
            out["routes"] = [_route(r, prefix) for r in value]
        elif key == "muteTimeIntervals":
            out["mute_time_intervals"] = [prefix + name for name in value]
        else:
            out[ROUTE_KEYS[key]] = value
    return out


def alertmanager_config(obj: dict[str, Any]) -> dict[str, Any]:
    namespace = obj["metadata"]["namespace"]
    prefix = f"{namespace}/{obj['metadata']['name']}/"
    scope = f'namespace="{namespace}"'
    top = _route(obj["spec"]["route"], prefix)
    top["matchers"] = [scope, *top.get("matchers", [])]
    top["continue"] = True
    receivers: list[dict[str, Any]] = [{"name": CLUSTER_DEFAULT}]
    for receiver in obj["spec"]["receivers"]:
        out: dict[str, Any] = {"name": prefix + receiver["name"]}
        for hook in receiver.get("webhookConfigs", []):
            converted = {"url": hook["url"], "send_resolved": hook.get("sendResolved", True)}
            if "httpConfig" in hook:
                converted["http_config"] = {
                    "authorization": {"type": "Bearer", "credentials": "secret-from-the-namespace"}
                }
            out.setdefault("webhook_configs", []).append(converted)
        receivers.append(out)
    inhibit = [
        {
            "source_matchers": [scope, *_matchers(r["sourceMatch"])],
            "target_matchers": [scope, *_matchers(r["targetMatch"])],
            "equal": r.get("equal", []),
        }
        for r in obj["spec"].get("inhibitRules", [])
    ]
    config = {
        "route": {"receiver": CLUSTER_DEFAULT, "routes": [top]},
        "receivers": receivers,
        "inhibit_rules": inhibit,
    }
    intervals = [_time_interval(t, prefix) for t in obj["spec"].get("muteTimeIntervals", [])]
    if intervals:
        config["time_intervals"] = intervals
    return config


def _time_interval(named: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A MuteTimeInterval as the named time interval the operator writes (in UTC)."""
    periods = []
    for raw in named["timeIntervals"]:
        period: dict[str, Any] = {}
        if "times" in raw:
            period["times"] = [{"start_time": t["startTime"], "end_time": t["endTime"]} for t in raw["times"]]
        for key in ("weekdays", "months", "years"):
            if key in raw:
                period[key] = raw[key]
        if "daysOfMonth" in raw:
            period["days_of_month"] = [f"{d['start']}:{d['end']}" for d in raw["daysOfMonth"]]
        periods.append(period)
    return {"name": prefix + named["name"], "time_intervals": periods}
