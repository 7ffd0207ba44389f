// stackmedic as a monitoring mixin: the alerts, recording rules and dashboards that
// deploy/prometheus/rules/ and deploy/grafana/dashboards/ ship, read from those very files
// (they stay the single source), with the runbook links pointing wherever you keep them.
//
//   local stackmedic = (import 'mixin.libsonnet') + {
//     _config+:: { runbookURLBase: 'https://wiki.example.com/runbooks/' },
//   };
//   { 'stackmedic-alerts.yaml': std.manifestYamlDoc(stackmedic.prometheusAlerts) }
//
// Needs jsonnet 0.18 or newer (std.parseYaml); docs/alerting.md has the commands.
local shippedRunbookBase = 'https://github.com/stackmedic/stackmedic/blob/main/docs/runbooks/';

// Every rule file of deploy/prometheus/rules/ (tests/deploy/test_mixin.py keeps this list whole).
local ruleFiles = [
  std.parseYaml(importstr '../prometheus/rules/stackmedic-availability.yml'),
  std.parseYaml(importstr '../prometheus/rules/stackmedic-healing.yml'),
  std.parseYaml(importstr '../prometheus/rules/stackmedic-remediation.yml'),
  std.parseYaml(importstr '../prometheus/rules/stackmedic-resources.yml'),
];

local groups = std.flattenArrays([file.groups for file in ruleFiles]);

{
  _config+:: {
    // Where docs/runbooks/ is published; each alert links to <base><AlertName>.md.
    runbookURLBase: shippedRunbookBase,
  },

  local config = self._config,
  local relink(rule) =
    if std.objectHas(rule, 'annotations') && std.objectHas(rule.annotations, 'runbook_url') then
      rule { annotations+: { runbook_url: std.strReplace(rule.annotations.runbook_url, shippedRunbookBase, config.runbookURLBase) } }
    else rule,
  local only(kind, group) = group { rules: [relink(r) for r in group.rules if std.objectHas(r, kind)] },
  local keep(kind) = [g for g in [only(kind, group) for group in groups] if std.length(g.rules) > 0],

  prometheusAlerts+:: { groups+: keep('alert') },
  prometheusRules+:: { groups+: keep('record') },

  grafanaDashboards+:: {
    'stack-health.json': import '../grafana/dashboards/stack-health.json',
    'remediation.json': import '../grafana/dashboards/remediation.json',
  },
}
