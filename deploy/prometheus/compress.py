"""Time-compressed copies of the shipped alerting configuration, for tests and benchmarks.

The shipped rules count samples: a rule group's `interval` is the sample period and a
rule's `for:` is a whole number of those periods (docs/alerting.md). Dividing both by the
same factor keeps every alert firing on the same evaluation, only sooner; the expressions,
labels and annotations are copied unchanged, so a compressed copy cannot drift from the
shipped files. Range windows inside expressions (`[5m]`, `time() - x > 26 * 3600`) are
expressions, so they are not compressed: only the alerts that count samples speed up.

    python deploy/prometheus/compress.py --factor 5 --out-dir /tmp/fast

writes /tmp/fast/rules/*.yml, /tmp/fast/prometheus.yml and /tmp/fast/alertmanager.yml.
From Python (the repository's top folder on sys.path, as under pytest):

    from deploy.prometheus.compress import compress_rules, load_shipped_rules
    fast = {name: compress_rules(doc, 5) for name, doc in load_shipped_rules().items()}
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parent
RULES_DIR = PROMETHEUS_DIR / "rules"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTMANAGER_CONFIG = PROMETHEUS_DIR.parent / "alertmanager" / "alertmanager.yml"
REMEDIATION_RECEIVER = "stackmedic-remediation"

_UNITS_MS = (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")


class CompressError(ValueError):
    """A duration or a document that cannot be compressed."""


def parse_duration(text: str) -> int:
    """A Prometheus duration ("1m30s", "5s", "250ms") in milliseconds."""
    match = _DURATION.match(str(text).strip())
    if not match or not text:
        raise CompressError(f"not a Prometheus duration: {text!r}")
    return sum(int(v) * ms for v, (_, ms) in zip(match.groups(), _UNITS_MS, strict=True) if v)


def format_duration(ms: int) -> str:
    """Milliseconds as the shortest Prometheus duration ("90000" -> "1m30s"); 0 is "0s"."""
    if ms < 0:
        raise CompressError(f"negative duration: {ms} ms")
    if ms == 0:
        return "0s"
    out = ""
    for unit, size in _UNITS_MS:
        count, ms = divmod(ms, size)
        if count:
            out += f"{count}{unit}"
    return out


def scale_duration(text: str, factor: float) -> str:
    """`text` divided by `factor`, rounded to the millisecond, never below 1 ms unless 0."""
    ms = parse_duration(text)
    if ms == 0:
        return "0s"
    return format_duration(max(1, round(ms / factor)))


def _check_factor(factor: float) -> None:
    if not factor >= 1:
        raise CompressError(f"factor must be 1 or more, got {factor!r}")


def compress_rules(doc: Mapping[str, Any], factor: float) -> dict[str, Any]:
    """A rules file (parsed) with every group `interval` and rule `for:` divided by `factor`."""
    _check_factor(factor)
    out = copy.deepcopy(dict(doc))
    for group in out.get("groups", []):
        if "interval" not in group:
            raise CompressError(f"group {group.get('name')!r} has no interval: its samples are not defined")
        group["interval"] = scale_duration(group["interval"], factor)
        for rule in group.get("rules", []):
            if "for" in rule:
                rule["for"] = scale_duration(rule["for"], factor)
    return out


def compress_prometheus_config(
    doc: Mapping[str, Any],
    factor: float,
    targets: Mapping[str, Iterable[str]] | None = None,
    alertmanagers: Iterable[str] | None = None,
    rule_files: Iterable[str] | None = None,
) -> dict[str, Any]:
    """prometheus.yml with intervals and timeouts divided by `factor`.

    `targets` replaces the static targets of the named jobs (a job not named keeps its
    own), and drops their `basic_auth`; `alertmanagers` and `rule_files` replace those
    lists when given (the Alertmanagers without credentials).
    """
    _check_factor(factor)
    out = copy.deepcopy(dict(doc))
    scopes = [out.setdefault("global", {}), *out.get("scrape_configs", [])]
    for scope in scopes:
        for key in ("scrape_interval", "scrape_timeout", "evaluation_interval"):
            if key in scope:
                scope[key] = scale_duration(scope[key], factor)
    for job in out.get("scrape_configs", []):
        if targets and job["job_name"] in targets:
            job["static_configs"] = [{"targets": list(targets[job["job_name"]])}]
            # the shipped credentials are compose secrets that a test's server does not ask for
            job.pop("basic_auth", None)
    if alertmanagers is not None:
        out["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    if rule_files is not None:
        out["rule_files"] = list(rule_files)
    return out


def compress_alertmanager_config(
    doc: Mapping[str, Any],
    factor: float,
    receiver_url: str | None = None,
    credentials_file: str | None = None,
) -> dict[str, Any]:
    """alertmanager.yml with every route's waits and intervals divided by `factor`.

    `receiver_url` and `credentials_file` replace those of the stackmedic-remediation
    webhook, to point it at a receiver started by a test.
    """
    _check_factor(factor)
    out = copy.deepcopy(dict(doc))
    pending = [out["route"]]
    while pending:
        route = pending.pop()
        for key in ("group_wait", "group_interval", "repeat_interval"):
            if key in route:
                route[key] = scale_duration(route[key], factor)
        pending.extend(route.get("routes", []))
    for receiver in out.get("receivers", []):
        if receiver["name"] != REMEDIATION_RECEIVER:
            continue
        for hook in receiver.get("webhook_configs", []):
            if receiver_url is not None:
                hook["url"] = receiver_url
            if credentials_file is not None:
                hook.setdefault("http_config", {}).setdefault("authorization", {})["credentials_file"] = (
                    credentials_file
                )
    return out


def load_yaml(path: Path) -> dict[str, Any]:
    """One YAML document from `path`."""
    return yaml.safe_load(Path(path).read_text())


def load_shipped_rules(rules_dir: Path = RULES_DIR) -> dict[str, dict[str, Any]]:
    """Every shipped rules file, parsed, by file name."""
    return {p.name: load_yaml(p) for p in sorted(Path(rules_dir).glob("*.yml"))}


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (expressions) as `|` blocks, so the copy reads like the source."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_representer)


def dump_yaml(doc: Mapping[str, Any], header: str = "") -> str:
    """YAML text of `doc`, after a comment header."""
    body = yaml.dump(dict(doc), Dumper=_BlockDumper, sort_keys=False, width=100, allow_unicode=True)
    return "".join(f"# {line}\n" for line in header.splitlines()) + body


def write_compressed(out_dir: Path, factor: float) -> list[Path]:
    """Compressed copies of the shipped rules, prometheus.yml and alertmanager.yml in `out_dir`."""
    out_dir = Path(out_dir)
    (out_dir / "rules").mkdir(parents=True, exist_ok=True)
    written = []

    def write(path: Path, doc: Mapping[str, Any], source: Path) -> None:
        header = (
            f"GENERATED by deploy/prometheus/compress.py --factor {factor:g} from {source.name}; do not edit."
        )
        path.write_text(dump_yaml(doc, header))
        written.append(path)

    for source in sorted(RULES_DIR.glob("*.yml")):
        write(out_dir / "rules" / source.name, compress_rules(load_yaml(source), factor), source)
    write(
        out_dir / "prometheus.yml",
        compress_prometheus_config(load_yaml(PROMETHEUS_CONFIG), factor),
        PROMETHEUS_CONFIG,
    )
    write(
        out_dir / "alertmanager.yml",
        compress_alertmanager_config(load_yaml(ALERTMANAGER_CONFIG), factor),
        ALERTMANAGER_CONFIG,
    )
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: write the compressed copies and list them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--factor", type=float, required=True, help="divide intervals and for: by this (>= 1)"
    )
    parser.add_argument(
        "--out-dir", type=Path, required=True, help="where to write rules/, prometheus.yml ..."
    )
    args = parser.parse_args(argv)
    try:
        written = write_compressed(args.out_dir, args.factor)
    except CompressError as exc:
        print(f"compress: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
