"""The Grafana dashboards, statically: what Grafana needs to import them, the data-source
variable everywhere, metric names from docs/design.md, runbook links to real alerts and
runbooks, thresholds equal to the alert rules', every query parsed by promtool."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.services import require_binary
from tests.deploy_stack.dashboards import (
    DASHBOARD_FILES,
    METRIC,
    REPO,
    all_dashboards,
    annotation_queries,
    label_values_query,
    panels,
    queries,
    substitute,
    variables,
)

DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
DASHBOARDS = all_dashboards()


def rules() -> list[dict]:
    out = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            out.extend(r for r in group["rules"] if "alert" in r)
    return out


def alert_exprs(name: str) -> list[str]:
    found = [r["expr"] for r in rules() if r["alert"] == name]
    assert found, f"no alert {name} in {RULES_DIR}"
    return found


def panel(dashboard: str, title: str) -> dict:
    (found,) = [p for p in panels(DASHBOARDS[dashboard]) if p["title"] == title]
    return found


def threshold_values(p: dict) -> list[float]:
    return [s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"] if s["value"] is not None]


def test_both_dashboards_are_there():
    assert {p.name for p in DASHBOARD_FILES} == {"stack-health.json", "remediation.json"}


def test_the_committed_json_is_what_the_generator_makes():
    run = subprocess.run(
        [sys.executable, "-m", "deploy.grafana.generate", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_what_grafana_needs_to_import_it(name: str):
    d = DASHBOARDS[name]
    assert d["title"] and re.fullmatch(r"[a-z0-9-]{1,40}", d["uid"])
    assert isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 36
    assert "id" not in d or d["id"] is None, "a fixed dashboard id clashes on import"
    assert isinstance(d["panels"], list) and d["panels"]
    assert isinstance(d["templating"]["list"], list)
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    for p in panels(d):
        pos = p["gridPos"]
        assert {"h", "w", "x", "y"} <= set(pos), p["title"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, p["title"]
        assert p["type"] in {"row", "stat", "timeseries", "table", "state-timeline"}, p["type"]
        if p["type"] != "row":
            assert p["title"] and p.get("description"), "every panel says what it shows"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_do_not_overlap(name: str):
    taken: dict[tuple[int, int], str] = {}
    for p in panels(DASHBOARDS[name]):
        pos = p["gridPos"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{p['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = p["title"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_query_uses_the_datasource_variable(name: str):
    d = DASHBOARDS[name]
    ds = variables(d)["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for p in panels(d):
        if p["type"] == "row":
            continue
        assert p["datasource"] == DATASOURCE_REF, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert p["targets"] and len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE_REF and t["expr"].strip(), p["title"]
    for v in variables(d).values():
        if v["type"] == "query":
            assert v["datasource"] == DATASOURCE_REF, v["name"]
    for a in d["annotations"]["list"]:
        if "expr" in a:
            assert a["datasource"] == DATASOURCE_REF, a["name"]
    # no data source of some particular Grafana is named anywhere
    text = (REPO / "deploy" / "grafana" / "dashboards" / f"{name}.json").read_text()
    uids = set(re.findall(r'"uid": "([^"]*)"', text)) - {d["uid"]}
    assert uids == {"${datasource}", "-- Grafana --"}


def design_metrics() -> set[str]:
    text = (REPO / "docs" / "design.md").read_text()
    names = set(METRIC.findall(text))
    # histograms expose these series too
    for histogram in (
        "stackmedic_receiver_jenkins_request_duration_seconds",
        "stackmedic_receiver_remediation_duration_seconds",
    ):
        names |= {histogram + suffix for suffix in ("_bucket", "_sum", "_count")}
    return names


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_metric_names_are_the_ones_design_md_promises(name: str):
    known = design_metrics()
    exprs = [q.expr for q in queries(name, DASHBOARDS[name])]
    exprs += [e for _, e in annotation_queries(DASHBOARDS[name])]
    exprs += [v.get("definition", "") for v in variables(DASHBOARDS[name]).values()]
    used = {m for e in exprs for m in METRIC.findall(e)}
    assert used and used <= known, sorted(used - known)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_status_cells_link_to_runbooks_of_real_alerts(name: str):
    alerts = {r["alert"] for r in rules()}
    d = DASHBOARDS[name]
    runbooks = variables(d)["runbooks"]
    # the default base is where the rules' runbook_url annotations point
    bases = {r["annotations"]["runbook_url"].rsplit("/", 1)[0] for r in rules()}
    assert bases == {runbooks["query"]}
    linked = 0
    for p in panels(d):
        links = p.get("fieldConfig", {}).get("defaults", {}).get("links", [])
        has_mapping = bool(p.get("fieldConfig", {}).get("defaults", {}).get("mappings"))
        if p["type"] == "stat" and has_mapping and "PAUSED" not in str(p["fieldConfig"]):
            assert links, f"status panel {p['title']} links to no runbook"
        for link in links:
            m = re.fullmatch(r"\$\{runbooks\}/(\w+)\.md", link["url"])
            assert m, link["url"]
            assert m.group(1) in alerts, f"{p['title']}: no alert {m.group(1)}"
            assert (REPO / "docs" / "runbooks" / f"{m.group(1)}.md").exists(), m.group(1)
            linked += 1
    assert linked >= 5


def test_status_grids_show_unknown_in_grey():
    # the Active Dashboard's grey: -1 maps to UNKNOWN in grey on every grid of things
    for title in (
        "Apps",
        "Container services",
        "Process groups",
        "Ports",
        "Database servers",
        "Tables of $database",
    ):
        p = panel("stack-health", title)
        options = p["fieldConfig"]["defaults"]["mappings"][0]["options"]
        assert options["-1"]["text"] == "UNKNOWN" and options["-1"]["color"] == "#8e8e8e", title
        best = options[max(options, key=float)]
        assert best["color"] == "green" and best["text"] in ("UP", "OK", "OPEN"), title
        assert "red" in {o["color"] for o in options.values()}, title


def test_tables_are_unknown_while_the_database_server_is_down():
    expr = panel("stack-health", "Tables of $database")["targets"][0]["expr"]
    assert "stackmedic_mysql_up" in expr and "== 1" in expr and "* 0 - 1" in expr


def test_tables_repeat_per_database_and_backups_per_database():
    assert panel("stack-health", "Tables of $database")["repeat"] == "database"
    assert panel("remediation", "Backups: $database")["repeat"] == "database"
    for name in DASHBOARDS:
        assert variables(DASHBOARDS[name])["database"]["type"] == "query"


def numbers(expr: str, op: str) -> set[float]:
    return {float(n) for n in re.findall(rf"{re.escape(op)}\s*([0-9.]+)\s*$", expr.strip(), re.M)}


def test_cpu_thresholds_are_the_alerts():
    expected = set().union(*(numbers(e, ">") for e in alert_exprs("StackCpuHigh")))
    assert expected and set(threshold_values(panel("stack-health", "CPU busy"))) == expected


def test_process_memory_threshold_is_the_alerts():
    expected = set().union(*(numbers(e, ">") for e in alert_exprs("StackProcessMemoryHigh")))
    assert expected and set(threshold_values(panel("stack-health", "Memory per process group"))) == expected


def test_filesystem_thresholds_are_the_alerts():
    expected = set().union(*(numbers(e, "<") for e in alert_exprs("StackFilesystemSpaceLow")))
    expected |= set().union(*(numbers(e, "<") for e in alert_exprs("StackDockerSpaceLow")))
    assert (
        expected and set(threshold_values(panel("stack-health", "File system space available"))) == expected
    )


def test_backup_age_threshold_is_the_alerts():
    for alert in ("StackBackupStale", "StackBackupUnverified"):
        (expr,) = alert_exprs(alert)
        hours = re.search(r">\s*(\d+)\s*\*\s*3600", expr)
        assert hours, expr
        for title in ("Newest backup", "Backup age"):
            assert int(hours.group(1)) * 3600 in threshold_values(panel("remediation", title))


def test_every_query_parses(tmp_path: Path):
    """promtool parses each query (macros and variables substituted) as a recording rule."""
    promtool = require_binary("promtool")
    values = {"datasource": "x", "instance": ".+", "database": ".+", "runbooks": "x"}
    records = []
    for name, d in DASHBOARDS.items():
        for i, q in enumerate(queries(name, d)):
            records.append(
                {"record": f"dashboard:{name.replace('-', '_')}:{i}", "expr": substitute(q.expr, values)}
            )
        for _name, expr in annotation_queries(d):
            records.append(
                {"record": f"annotation:{name.replace('-', '_')}", "expr": substitute(expr, values)}
            )
        for v in variables(d).values():
            if v["type"] == "query":
                selector, _ = label_values_query(v["definition"])
                records.append({"record": f"variable:{v['name']}", "expr": substitute(selector, values)})
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": records}]}))
    run = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(records) > 40
