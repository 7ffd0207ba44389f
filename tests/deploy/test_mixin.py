"""deploy/mixin/mixin.libsonnet gives monitoring-mixin users the shipped rules and dashboards."""

from __future__ import annotations

import json
import re
import subprocess

import _jsonnet
import pytest
import yaml

from harness.services import require_binary
from tests.deploy import shipped

MIXIN = shipped.REPO / "deploy" / "mixin" / "mixin.libsonnet"
DASHBOARDS = shipped.REPO / "deploy" / "grafana" / "dashboards"


def render(config: str = "{}") -> dict:
    snippet = f"""
      local m = (import '{MIXIN}') + {{ _config+:: {config} }};
      {{ alerts: m.prometheusAlerts, rules: m.prometheusRules, dashboards: m.grafanaDashboards }}
    """
    return json.loads(_jsonnet.evaluate_snippet("test", snippet))


def test_the_mixin_reads_every_rule_file_and_every_dashboard():
    text = MIXIN.read_text()
    listed = set(re.findall(r"importstr '\.\./prometheus/rules/([^']+)'", text))
    assert listed == {p.name for p in shipped.RULES_DIR.glob("*.yml")}
    dashboards = set(re.findall(r"import '\.\./grafana/dashboards/([^']+)'", text))
    assert dashboards == {p.name for p in DASHBOARDS.glob("*.json")}


def test_by_default_the_mixin_is_exactly_the_shipped_files():
    out = render()
    shipped_groups = [
        g for p in sorted(shipped.RULES_DIR.glob("*.yml")) for g in yaml.safe_load(p.read_text())["groups"]
    ]
    alerts = {g["name"]: g["rules"] for g in out["alerts"]["groups"]}
    for group in shipped_groups:
        expected = [r for r in group["rules"] if "alert" in r]
        if expected:
            assert alerts[group["name"]] == expected, group["name"]
    records = [r for g in out["rules"]["groups"] for r in g["rules"]]
    assert records == [r for g in shipped_groups for r in g["rules"] if "record" in r]
    for name, dashboard in out["dashboards"].items():
        assert dashboard == json.loads((DASHBOARDS / name).read_text()), name


def test_one_setting_moves_every_runbook_link():
    out = render("{ runbookURLBase: 'https://wiki.example.com/ops/runbooks/' }")
    alerts = [r for g in out["alerts"]["groups"] for r in g["rules"]]
    assert len(alerts) == len(shipped.alerts())
    for rule in alerts:
        assert (
            rule["annotations"]["runbook_url"] == f"https://wiki.example.com/ops/runbooks/{rule['alert']}.md"
        )


@pytest.mark.parametrize("part", ["alerts", "rules"])
def test_what_the_mixin_renders_passes_promtool(part, tmp_path):
    promtool = require_binary("promtool")
    path = tmp_path / f"{part}.yml"
    path.write_text(yaml.safe_dump(render()[part]))
    run = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
