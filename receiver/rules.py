"""Rules: which alert becomes which Jenkins job, and the only path from a label to a parameter.

A label value reaches a Jenkins parameter (or a breaker key) only when it matches the rule's
allow pattern in full, and never when it holds a control character: a value such as
``; rm -rf /``, ``../etc`` or one with a newline is rejected and the decision recorded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .config import TEMPLATE_REF, BreakerPolicy, RuleConfig

MAX_VALUE_LENGTH = 256
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ParamRejected(Exception):
    """A label value did not pass its allow pattern; the message says which and why."""

    def __init__(self, label: str, value: str, why: str):
        self.label = label
        self.value = value
        super().__init__(f"label {label}={value[:80]!r} {why}")


@dataclass(frozen=True)
class Rendered:
    """What a rule makes of one alert: its target and the job parameters."""

    target: str
    params: dict[str, str]


class Rule:
    """One configured rule, with its patterns compiled."""

    def __init__(self, config: RuleConfig):
        self.config = config
        self.name = config.name
        self.job = config.job
        self.policy: BreakerPolicy = config.breaker
        # ASCII classes, as Alertmanager's Go regexps have: `\w` must not accept a Cyrillic
        # look-alike of a service name
        self._match_re = {k: re.compile(v, re.ASCII) for k, v in config.match_re.items()}
        self._allow = {k: re.compile(v, re.ASCII) for k, v in config.allow.items()}

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Alertmanager semantics: a missing label is the empty string; regexes are anchored."""
        for name, want in self.config.match.items():
            if labels.get(name, "") != want:
                return False
        return all(p.fullmatch(labels.get(name, "")) for name, p in self._match_re.items())

    def allowed(self, label: str, labels: Mapping[str, str]) -> str:
        """The value of `label` if it passes its allow pattern; ParamRejected otherwise."""
        if label not in labels:
            raise ParamRejected(label, "", "is missing")
        value = labels[label]
        if CONTROL.search(value):
            raise ParamRejected(label, value, "contains a control character")
        if len(value) > MAX_VALUE_LENGTH:
            raise ParamRejected(label, value, f"is longer than {MAX_VALUE_LENGTH} characters")
        pattern = self._allow.get(label)
        if pattern is None or not pattern.fullmatch(value):
            shown = pattern.pattern if pattern else "(none)"
            raise ParamRejected(label, value, f"does not match the allow pattern {shown}")
        return value

    def render(self, labels: Mapping[str, str]) -> Rendered:
        """The target and parameters for an alert with `labels`, or ParamRejected."""
        target = self.allowed(self.config.target, labels)
        params = {
            name: TEMPLATE_REF.sub(lambda m: self.allowed(m.group(1), labels), template)
            for name, template in self.config.params.items()
        }
        return Rendered(target=target, params=params)


def compile_rules(configs: Sequence[RuleConfig]) -> list[Rule]:
    """Rules in configuration order."""
    return [Rule(c) for c in configs]


def find_rule(rules: Sequence[Rule], labels: Mapping[str, str]) -> Rule | None:
    """The first rule that matches `labels`, or None."""
    return next((r for r in rules if r.matches(labels)), None)
