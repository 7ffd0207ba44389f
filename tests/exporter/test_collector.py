"""The scrape runner: deadlines, no pile-up, failures as data (fake checks: pure logic)."""

from __future__ import annotations

import threading

import pytest
from stackmedic.exporter.checks.base import Check
from stackmedic.exporter.checks.processes import INSTANCES
from stackmedic.exporter.collector import ScrapeRunner
from stackmedic.exporter.deadline import Deadline
from stackmedic.exporter.metrics import Samples
from stackmedic.exporter.web import scrape_budget

from tests.exporter.helpers import registry_of, scrape


class Quick(Check):
    kind = "quick"
    metrics = (INSTANCES,)

    def __init__(self, name: str = "quick", value: float = 42):
        super().__init__(name, timeout=5)
        self.value = value

    def run(self, out: Samples, deadline: Deadline) -> None:
        out.add(INSTANCES, self.value, self.name)

    def blank(self, out: Samples, reason: str, elapsed: float) -> None:
        out.add(INSTANCES, 0, self.name)


class Hung(Quick):
    """Blocks until released; counts how many times it was started."""

    kind = "hung"

    def __init__(self, timeout: float = 0.2):
        super().__init__("hung")
        self.timeout = timeout
        self.release = threading.Event()
        self.started = 0
        self.deadlines: list[Deadline] = []

    def run(self, out: Samples, deadline: Deadline) -> None:
        self.started += 1
        self.deadlines.append(deadline)
        self.release.wait(30)
        out.add(INSTANCES, 1, self.name)


class Broken(Quick):
    kind = "broken"

    def run(self, out: Samples, deadline: Deadline) -> None:
        raise RuntimeError("boom")


def test_completed_check_reports_success_and_its_samples():
    reg = scrape([Quick()])
    assert reg.get_sample_value("stackmedic_check_success", {"check": "quick"}) == 1
    assert reg.get_sample_value("stackmedic_process_instances", {"group": "quick"}) == 42
    for reason in ("timeout", "error", "still_running"):
        labels = {"check": "quick", "reason": reason}
        assert reg.get_sample_value("stackmedic_check_failure_reason", labels) == 0
    assert reg.get_sample_value("stackmedic_build_info", {"version": "unknown"}) == 1


def test_hung_check_times_out_others_still_reported():
    hung = Hung(timeout=0.2)
    runner = ScrapeRunner([hung, Quick()])
    try:
        reg = registry_of(runner, budget=5)
        assert reg.get_sample_value("stackmedic_check_success", {"check": "hung"}) == 0
        assert (
            reg.get_sample_value("stackmedic_check_failure_reason", {"check": "hung", "reason": "timeout"})
            == 1
        )
        assert (
            reg.get_sample_value("stackmedic_check_failure_reason", {"check": "hung", "reason": "error"}) == 0
        )
        # the blank values are there: the series never disappears
        assert reg.get_sample_value("stackmedic_process_instances", {"group": "hung"}) == 0
        assert reg.get_sample_value("stackmedic_check_success", {"check": "quick"}) == 1
        assert reg.get_sample_value("stackmedic_process_instances", {"group": "quick"}) == 42
    finally:
        hung.release.set()
        runner.close()


def test_scrape_budget_shorter_than_check_timeout_wins():
    hung = Hung(timeout=60)
    runner = ScrapeRunner([hung], grace=0.25)
    try:
        reg = registry_of(runner, budget=0.1)
        assert (
            reg.get_sample_value("stackmedic_check_failure_reason", {"check": "hung", "reason": "timeout"})
            == 1
        )
        # the check itself was told to stop by the budget (plus grace), not by its 60 s
        assert len(hung.deadlines) == 1
        duration = reg.get_sample_value("stackmedic_check_duration_seconds", {"check": "hung"})
        assert duration < 60
    finally:
        hung.release.set()
        runner.close()


def test_still_running_check_is_not_started_again():
    hung = Hung(timeout=0.05)
    runner = ScrapeRunner([hung])
    try:
        first = registry_of(runner)
        second = registry_of(runner)
        third = registry_of(runner)
        assert hung.started == 1
        assert (
            first.get_sample_value("stackmedic_check_failure_reason", {"check": "hung", "reason": "timeout"})
            == 1
        )
        for reg in (second, third):
            labels = {"check": "hung", "reason": "still_running"}
            assert reg.get_sample_value("stackmedic_check_failure_reason", labels) == 1
            assert reg.get_sample_value("stackmedic_check_success", {"check": "hung"}) == 0
        assert len(runner._pool._threads) == 1  # one thread ever made: no pile-up
        # once it finishes, the next scrape runs it again
        hung.release.set()
        _wait(lambda: not runner._running)
        hung.release.clear()
        hung.timeout = 5
        hung.release.set()
        fourth = registry_of(runner)
        assert hung.started == 2
        assert fourth.get_sample_value("stackmedic_check_success", {"check": "hung"}) == 1
    finally:
        hung.release.set()
        runner.close()


def test_broken_check_is_an_error_not_a_failed_scrape():
    reg = scrape([Broken("broken"), Quick()])
    assert reg.get_sample_value("stackmedic_check_success", {"check": "broken"}) == 0
    assert (
        reg.get_sample_value("stackmedic_check_failure_reason", {"check": "broken", "reason": "error"}) == 1
    )
    assert reg.get_sample_value("stackmedic_process_instances", {"group": "broken"}) == 0
    assert reg.get_sample_value("stackmedic_check_success", {"check": "quick"}) == 1


def test_overlapping_scrapes_each_get_a_whole_answer():
    checks = [Quick(f"q{i}", i) for i in range(20)]
    runner = ScrapeRunner(checks, max_workers=4)
    results: list = []
    errors: list = []

    def one() -> None:
        try:
            results.append(registry_of(runner))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    runner.close()
    assert not errors
    assert len(results) == 8
    for reg in results:
        for i in range(20):
            # overlapping scrapes share a run in flight: every one gets the values
            assert reg.get_sample_value("stackmedic_process_instances", {"group": f"q{i}"}) == i
            assert reg.get_sample_value("stackmedic_check_success", {"check": f"quick/q{i}"}) == 1


def test_overlapping_scrape_shares_the_run_in_flight():
    slow = Hung(timeout=5)
    joined = threading.Event()

    class Observed(ScrapeRunner):
        def _wait(self, pending, lane=None):
            if not all(ours for *_, ours in pending):
                joined.set()  # the second scrape is about to wait on the first one's run
            return super()._wait(pending, lane)

    runner = Observed([slow])
    results: list = []
    try:
        threads = [threading.Thread(target=lambda: results.append(registry_of(runner))) for _ in range(2)]
        for t in threads:
            t.start()
        assert joined.wait(30)
        slow.release.set()
        for t in threads:
            t.join(30)
        assert slow.started == 1
        assert [r.get_sample_value("stackmedic_check_success", {"check": "hung"}) for r in results] == [1, 1]
        assert [r.get_sample_value("stackmedic_process_instances", {"group": "hung"}) for r in results] == [
            1,
            1,
        ]
    finally:
        slow.release.set()
        runner.close()


def test_queued_check_that_never_started_is_a_timeout_and_runs_next_time():
    hung = Hung(timeout=0.1)
    waiting = Quick("waiting")
    waiting.timeout = 0.1
    runner = ScrapeRunner([hung, waiting], max_workers=1)
    try:
        reg = registry_of(runner)
        labels = {"check": "quick/waiting", "reason": "timeout"}
        assert reg.get_sample_value("stackmedic_check_failure_reason", labels) == 1
        assert "quick/waiting" not in runner._running  # cancelled, so free to run again
    finally:
        hung.release.set()
        runner.close()


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, 10.0), ("", 10.0), ("abc", 10.0), ("-1", 10.0), ("5", 4.5), ("0.5", 0.25), ("15.5", 15.0)],
)
def test_scrape_budget_from_prometheus_header(header, expected):
    assert scrape_budget(header, default=10.0, margin=0.5) == expected


def _wait(predicate, timeout: float = 10) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError("condition not met in time")


class Timed(Quick):
    """Takes `cost` seconds of a fake clock and notes when it started."""

    def __init__(self, name: str, cost: float, clock: list[float], started: list[str]):
        super().__init__(name)
        self.cost, self.clock, self.started = cost, clock, started

    def run(self, out: Samples, deadline: Deadline) -> None:
        self.started.append(self.name)
        self.clock[0] += self.cost
        out.add(INSTANCES, 1, self.name)


def test_slowest_check_of_the_last_scrape_starts_first():
    clock, started = [0.0], []
    checks = [Timed("quick", 0.01, clock, started), Timed("slow", 0.5, clock, started)]
    runner = ScrapeRunner(checks, max_workers=1, clock=lambda: clock[0])
    try:
        scrapes = [runner.scrape(5), runner.scrape(5)]
    finally:
        runner.close()
    assert started == ["quick", "slow", "slow", "quick"]
    # the exposition keeps the configured order whatever the running order
    for samples in scrapes:
        groups = [labels[0] for s in samples for spec, labels, _ in s.items if spec is INSTANCES]
        assert groups == ["quick", "slow"]


class Noted(Quick):
    """Notes the thread it ran in; blocks while `hold` is set (after its first run)."""

    def __init__(self, name: str, threads: dict[str, int]):
        super().__init__(name)
        self.threads = threads
        self.hold = threading.Event()
        self.release = threading.Event()

    def run(self, out: Samples, deadline: Deadline) -> None:
        self.threads[self.name] = threading.get_ident()
        if self.hold.is_set():
            self.release.wait(30)
        out.add(INSTANCES, 1, self.name)


def test_checks_quick_last_time_share_one_thread_and_the_others_have_their_own():
    clock, started = [0.0], []
    checks = [Timed(f"q{i}", 0.002, clock, started) for i in range(4)] + [Timed("slow", 0.5, clock, started)]
    threads: dict[str, int] = {}
    in_lane: list[str] = []

    class Watched(ScrapeRunner):
        def _run(self, check, deadline):
            threads[check.name] = threading.get_ident()
            return super()._run(check, deadline)

        def _run_lane(self, lane):
            real_next = lane.next

            def next_noted():
                run = real_next()
                if run is not None:
                    in_lane.append(run[0].name)
                return run

            lane.next = next_noted
            return super()._run_lane(lane)

    runner = Watched(checks, max_workers=8, clock=lambda: clock[0], lanes=1, lane_budget=0.02)
    try:
        runner.scrape(5)
        assert in_lane == []  # nothing measured yet: a thread each
        samples = runner.scrape(5)
    finally:
        runner.close()
    # the four quick ones ran in the lane, one thread, one after another; 0.5 s is over
    # the lane's budget: the slow one ran apart
    assert sorted(in_lane) == ["q0", "q1", "q2", "q3"]
    assert len({threads[name] for name in in_lane}) == 1
    assert sum(1 for s in samples for spec, _, v in s.items if spec is INSTANCES and v == 1) == 5


def test_a_stalled_check_does_not_hold_up_the_rest_of_the_lane():
    threads: dict[str, int] = {}
    first, second = Noted("first", threads), Noted("second", threads)
    first.timeout = second.timeout = 5
    runner = ScrapeRunner([first, second], max_workers=4, lanes=1, stall=0.05)
    try:
        registry_of(runner)  # measured: both quick, so both go in the lane next time
        threads.clear()
        first.hold.set()
        # the lane runs `first` (listed first, and as quick) and would run `second` after it
        runner._took = {"quick/first": 0.002, "quick/second": 0.001}
        result: list = []
        scrape_thread = threading.Thread(target=lambda: result.append(registry_of(runner)))
        scrape_thread.start()
        # `second` ran, in a thread of its own, while `first` still hangs in the lane
        _wait(lambda: "second" in threads and threads["second"] != threads["first"])
        assert not result  # the scrape still waits for `first`, up to its deadline
        first.release.set()
        scrape_thread.join(30)
        reg = result[0]
        assert reg.get_sample_value("stackmedic_check_success", {"check": "quick/second"}) == 1
        assert reg.get_sample_value("stackmedic_check_success", {"check": "quick/first"}) == 1
    finally:
        first.release.set()
        runner.close()


def test_quick_checks_are_dealt_over_the_lanes_to_end_about_together():
    runner = ScrapeRunner([], lanes=2, lane_budget=0.01)
    try:
        runner._took = {"a": 0.008, "b": 0.005, "c": 0.004, "d": 0.003, "slow": 0.5}
        # the quickest while the budget lasts (2 x 10 ms), then the longest first to the
        # least loaded lane: a | b, then c with b (5 < 8 ms), d with a (9 > 8 ms)
        assert runner._plan_lanes() == {"a": 0, "b": 1, "c": 1, "d": 0}
        runner._took = {"a": 0.008, "b": 0.007, "c": 0.006}
        assert runner._plan_lanes() == {"b": 0, "c": 1}  # 8 ms is more than the 7 ms left
    finally:
        runner.close()
