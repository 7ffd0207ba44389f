"""Scrape checks the way the exporter does and read the values with prometheus_client."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry
from stackmedic.exporter.checks.base import Check
from stackmedic.exporter.collector import ScrapeRunner


class _Fixed:
    """A collector giving back one scrape's families (so that reading does not scrape again)."""

    def __init__(self, families: list):
        self.families = families

    def collect(self) -> list:
        return self.families

    def describe(self) -> list:
        return []


def registry_of(runner: ScrapeRunner, budget: float = 5.0) -> CollectorRegistry:
    """A fresh registry holding the result of one scrape by `runner`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(runner.collect(budget))))
    return registry


def scrape(checks: Sequence[Check], budget: float = 5.0, **kwargs) -> CollectorRegistry:
    """One scrape of `checks` with a fresh runner (closed afterwards)."""
    runner = ScrapeRunner(checks, **kwargs)
    try:
        return registry_of(runner, budget)
    finally:
        runner.close()
