"""Small builders of Grafana dashboard JSON (schemaVersion 38, Grafana 10), used by generate.py.

Every panel and target points at the data source through the `${datasource}` variable, so
the dashboards import into any Grafana whatever its Prometheus data source is called.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 38
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

GREEN, RED, ORANGE, GREY, BLUE = "green", "red", "orange", "#8e8e8e", "blue"

# value -> (text, colour) of the status grids; -1 is "unknown" everywhere
UNKNOWN = {"-1": ("UNKNOWN", GREY)}
UP_DOWN = {"1": ("UP", GREEN), "0": ("DOWN", RED), **UNKNOWN}


def mappings(values: dict[str, tuple[str, str]]) -> list[dict]:
    """Grafana value mappings from {value: (text, colour)}."""
    options = {
        v: {"text": text, "color": color, "index": i} for i, (v, (text, color)) in enumerate(values.items())
    }
    return [{"type": "value", "options": options}]


def thresholds(base: str, *steps: tuple[float, str]) -> dict:
    """Absolute thresholds: `base` below the first step, then each (value, colour)."""
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}] + [{"color": c, "value": v} for v, c in steps],
    }


def runbook_links(*alerts: str) -> list[dict]:
    """Data links to docs/runbooks/<Alert>.md under the dashboard's `runbooks` variable."""
    return [
        {"title": f"Runbook: {alert}", "url": f"${{runbooks}}/{alert}.md", "targetBlank": True}
        for alert in alerts
    ]


def target(
    expr: str, legend: str = "", ref: str = "A", instant: bool = False, fmt: str = "time_series"
) -> dict:
    """One Prometheus query of a panel."""
    t: dict[str, Any] = {
        "datasource": DATASOURCE,
        "refId": ref,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "format": fmt,
        "editorMode": "code",
    }
    return t


def _panel(kind: str, title: str, description: str, targets: list[dict], w: int, h: int) -> dict:
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets,
        "gridPos": {"h": h, "w": w, "x": 0, "y": 0},
    }


def status_grid(
    title: str,
    description: str,
    expr: str,
    legend: str,
    values: dict[str, tuple[str, str]],
    links: list[dict],
    w: int = 12,
    h: int = 5,
) -> dict:
    """A stat panel with one coloured cell per series: the Active Dashboard's status grid."""
    p = _panel("stat", title, description, [target(expr, legend, instant=True)], w, h)
    p["fieldConfig"] = {
        "defaults": {
            "mappings": mappings(values),
            "thresholds": thresholds(GREY),
            "color": {"mode": "thresholds"},
            "links": links,
            "noValue": "no data (is the exporter scraped?)",
            "unit": "none",
        },
        "overrides": [],
    }
    p["options"] = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "orientation": "auto",
        "textMode": "value_and_name",
        "colorMode": "background",
        "graphMode": "none",
        "justifyMode": "center",
        "wideLayout": True,
        "showPercentChange": False,
    }
    return p


def stat(
    title: str,
    description: str,
    targets: list[dict],
    unit: str,
    steps: dict,
    links: list[dict] | None = None,
    values: dict[str, tuple[str, str]] | None = None,
    w: int = 6,
    h: int = 4,
    graph: bool = False,
) -> dict:
    """A stat panel of one or a few numbers."""
    p = _panel("stat", title, description, targets, w, h)
    p["fieldConfig"] = {
        "defaults": {
            "unit": unit,
            "thresholds": steps,
            "color": {"mode": "thresholds"},
            "mappings": mappings(values) if values else [],
            "links": links or [],
        },
        "overrides": [],
    }
    p["options"] = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "orientation": "auto",
        "textMode": "auto",
        "colorMode": "value",
        "graphMode": "area" if graph else "none",
        "justifyMode": "auto",
    }
    return p


def timeseries(
    title: str,
    description: str,
    targets: list[dict],
    unit: str,
    steps: dict | None = None,
    links: list[dict] | None = None,
    w: int = 12,
    h: int = 8,
    minimum: float | None = None,
    maximum: float | None = None,
    bars: bool = False,
    stack: bool = False,
) -> dict:
    """A time series; with `steps`, the alert thresholds are drawn as lines and areas."""
    p = _panel("timeseries", title, description, targets, w, h)
    custom = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 60 if bars else 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "line+area" if steps else "off"},
    }
    defaults: dict[str, Any] = {
        "unit": unit,
        "custom": custom,
        "color": {"mode": "palette-classic"},
        "thresholds": steps or thresholds(GREEN),
        "links": links or [],
    }
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    p["fieldConfig"] = {"defaults": defaults, "overrides": []}
    p["options"] = {
        "legend": {
            "displayMode": "table",
            "placement": "bottom",
            "calcs": ["lastNotNull", "max"],
            "showLegend": True,
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return p


def state_timeline(
    title: str, description: str, targets: list[dict], values: dict[str, tuple[str, str]], links: list[dict]
) -> dict:
    """A state timeline: one lane per series, coloured by value mapping."""
    p = _panel("state-timeline", title, description, targets, 24, 7)
    p["fieldConfig"] = {
        "defaults": {
            "mappings": mappings(values),
            "thresholds": thresholds(GREY),
            "color": {"mode": "thresholds"},
            "links": links,
            "custom": {"fillOpacity": 80, "lineWidth": 0},
        },
        "overrides": [],
    }
    p["options"] = {
        "mergeValues": True,
        "showValue": "auto",
        "alignValue": "left",
        "rowHeight": 0.9,
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return p


def table(
    title: str, description: str, targets: list[dict], links: list[dict], w: int = 24, h: int = 7
) -> dict:
    """A table of instant results, one row per series, labels as columns."""
    for t in targets:
        t.update(instant=True, range=False, format="table")
    p = _panel("table", title, description, targets, w, h)
    p["fieldConfig"] = {
        "defaults": {"links": links, "custom": {"align": "auto", "filterable": True}},
        "overrides": [],
    }
    p["options"] = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
    p["transformations"] = [
        {"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True}}},
    ]
    return p


def row(title: str, collapsed: bool = False) -> dict:
    """A row header; panels below it until the next row belong to it."""
    return {"type": "row", "title": title, "collapsed": collapsed, "panels": [], "gridPos": {"h": 1, "w": 24}}


def layout(items: list[dict]) -> list[dict]:
    """Number the panels and place them left to right, wrapping at 24 columns."""
    x = y = line_height = 0
    for number, item in enumerate(items, start=1):
        item["id"] = number
        pos = item["gridPos"]
        if item["type"] == "row" or x + pos["w"] > 24:
            x, y, line_height = 0, y + line_height, 0
        pos["x"], pos["y"] = x, y
        if item["type"] == "row":
            y += 1
            continue
        x += pos["w"]
        line_height = max(line_height, pos["h"])
    return items


def datasource_variable() -> dict:
    """`${datasource}`: any Prometheus data source of this Grafana."""
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "includeAll": False,
        "multi": False,
        "options": [],
    }


def query_variable(name: str, label: str, query: str, multi: bool = True) -> dict:
    """A variable filled from label values (multi-select with All)."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-variable"},
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "allValue": ".+" if multi else None,
        "current": {},
        "hide": 0,
        "regex": "",
        "options": [],
    }


def runbooks_variable(default: str) -> dict:
    """`${runbooks}`: where docs/runbooks is browsable; the cells' links point there."""
    return {
        "name": "runbooks",
        "label": "Runbooks at",
        "type": "textbox",
        "query": default,
        "current": {"text": default, "value": default},
        "options": [{"selected": True, "text": default, "value": default}],
        "hide": 2,
    }


def annotation(name: str, expr: str, title: str, color: str) -> dict:
    """A Prometheus annotation: a marker wherever `expr` has a value."""
    return {
        "name": name,
        "datasource": DATASOURCE,
        "enable": True,
        "iconColor": color,
        "expr": expr,
        "step": "30s",
        "titleFormat": title,
        "textFormat": "",
        "tagKeys": "",
        "useValueForTime": False,
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    tags: list[str],
    panels: list[dict],
    variables: list[dict],
    annotations: list[dict],
    links: list[dict],
) -> dict:
    """The dashboard document Grafana imports."""
    builtin = {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": tags,
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "links": links,
        "annotations": {"list": [builtin, *annotations]},
        "templating": {"list": variables},
        "panels": layout(panels),
    }
