"""Declared metrics: every check kind fills only what it declares, and all of it."""

from __future__ import annotations

import pytest
from stackmedic.exporter.checks import KINDS, build_checks, check_class, declared_metrics
from stackmedic.exporter.collector import ScrapeRunner
from stackmedic.exporter.config import parse
from stackmedic.exporter.deadline import Deadline
from stackmedic.exporter.metrics import MetricError, MetricSpec, Samples, merge_specs

from harness.services import free_port

SPEC = MetricSpec("thing_up", "gauge", "A test metric.", ("name",))


def test_adding_an_undeclared_metric_raises():
    other = MetricSpec("other_up", "gauge", "Not declared.")
    with pytest.raises(MetricError) as err:
        Samples([SPEC]).add(other, 1)
    assert str(err.value) == "stackmedic_other_up is not declared by this check"


def test_adding_a_wrong_label_count_raises():
    out = Samples([SPEC])
    with pytest.raises(MetricError) as err:
        out.add(SPEC, 1, "a", "extra")
    assert str(err.value) == "stackmedic_thing_up takes labels (name), got 2 value(s)"
    with pytest.raises(MetricError):
        out.add(SPEC, 1)
    out.add(SPEC, 1, "a")
    assert out.value(SPEC, "a") == out.value("thing_up", "a") == 1


def test_one_name_declared_twice_raises():
    twin = MetricSpec("thing_up", "gauge", "Another help.", ("name",))
    with pytest.raises(MetricError) as err:
        merge_specs([[SPEC], [twin]])
    assert str(err.value) == "stackmedic_thing_up is declared twice"
    assert merge_specs([[SPEC], [SPEC]]) == [SPEC]


def test_declared_names_are_unique_across_kinds():
    names = [s.full_name for s in declared_metrics()]
    assert len(names) == len(set(names)) > 30


def unreachable_config(tmp_path) -> dict:
    """One check of every kind, each pointed at something that is not there."""
    port = free_port()
    (tmp_path / "backups" / "petclinic").mkdir(parents=True)
    docker = f"unix://{tmp_path}/no-docker.sock"
    return parse(
        {
            "system": {"filesystems": ["/", str(tmp_path / "not-mounted")]},
            "processes": {"groups": [{"group": "any", "name": "."}]},
            "ports": {"discover": True, "targets": [{"name": "p", "port": port, "program": "x"}]},
            "containers": {"docker_url": docker, "services": [{"name": "petclinic"}]},
            "docker_space": {"docker_url": docker},
            "http": [{"name": "h", "url": f"http://127.0.0.1:{port}/", "timeout": "1s"}],
            "mysql": [
                {
                    "name": "m",
                    "port": port,
                    "user": "u",
                    "timeout": "1s",
                    "tables": {"d": ["t"]},
                    "queries": [{"name": "q", "sql": "SELECT 1"}],
                }
            ],
            "backups": {"directory": str(tmp_path / "backups"), "databases": ["petclinic"]},
            "kubernetes": {
                "api_url": f"http://127.0.0.1:{port}",
                "namespace": "shop",
                "token_file": str(tmp_path / "no-token"),
                "workloads": [{"kind": "Deployment", "name": "petclinic"}],
            },
        }
    )


def test_every_kind_fills_exactly_what_it_declares(tmp_path):
    checks = build_checks(unreachable_config(tmp_path))
    assert sorted({c.kind for c in checks}) == sorted(KINDS)
    for check in checks:
        assert check.metrics == check_class(check.kind).metrics
        # an undeclared metric or a wrong label count raises in run or blank
        ran, blanked = check.samples(), check.samples()
        check.run(ran, Deadline.after(2))
        check.blank(blanked, "timeout", 0.1)
        filled = {spec for spec, _, _ in ran.items} | {spec for spec, _, _ in blanked.items}
        missing = [s.full_name for s in check.metrics if s not in filled]
        assert missing == [], check.check_label
        check.close()


def test_runner_exposes_metrics_in_declared_order(tmp_path):
    checks = build_checks(unreachable_config(tmp_path))
    runner = ScrapeRunner(checks)
    try:
        names = [f.name for f in runner.collect(5)]
    finally:
        runner.close()
    declared = [s.full_name.removesuffix("_total") for s in runner.metrics]
    assert names == [n for n in declared if n in names]
    assert names[:4] == [
        "stackmedic_build_info",
        "stackmedic_check_success",
        "stackmedic_check_duration_seconds",
        "stackmedic_check_failure_reason",
    ]
