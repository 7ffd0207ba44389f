"""The scrape runner: the checks of a scrape in a bounded pool, each under its deadline.

A check that does not finish by min(its timeout, the scrape budget) is reported as
`check_success 0` with reason `timeout`, its items at 0, and the scrape goes on. Its
thread is left to finish on its own (checks bound their own I/O); until it has, the check
is not started again: a later scrape waits for that same run (up to its own deadline),
and reports `still_running` if it is still going, instead of piling up threads on a
hung target. Overlapping scrapes (two Prometheus servers) so share one run per check.

Checks that were quick in the last scrape run in `lanes` threads (two), each running its
share one after another, dealt out by their last durations so that the lanes end about
together; the others, and checks not yet measured, get a thread each. Threads running
Python only hand the GIL to each other, each hand-over a thread switch: in
bench/exporter_bench.py one lane made the thread switches of a scrape six times fewer and
its CPU a quarter less, and a second lane, where one lane's waits on the network overlap
the other's work, took a tenth off the median for 5% more CPU (a third lane, nothing). A
lane check still running after `stall` seconds does not hold up the rest of its lane: the
scrape gives them threads of their own.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING

from .checks.base import Check
from .deadline import Deadline
from .metrics import MetricSpec, Samples, families, merge_specs

if TYPE_CHECKING:
    from prometheus_client.core import Metric

log = logging.getLogger(__name__)

CHECK_REASONS = ("timeout", "error", "still_running")

BUILD_INFO = MetricSpec(
    "build_info", "gauge", "Build information of stackmedic-exporter; always 1.", ("version",)
)
CHECK_SUCCESS = MetricSpec(
    "check_success", "gauge", "1 when the check ran to completion (even if its target is down).", ("check",)
)
CHECK_DURATION = MetricSpec(
    "check_duration_seconds", "gauge", "Time the check took in this scrape.", ("check",)
)
CHECK_FAILURE_REASON = MetricSpec(
    "check_failure_reason",
    "gauge",
    "1 for the reason a check did not complete (timeout, error, still_running), 0 for the others.",
    ("check", "reason"),
)
LOGIN_REASONS = ("missing", "malformed", "bad_credentials", "busy")
AUTH_FAILURES = MetricSpec(
    "exporter_auth_failures",
    "counter",
    "Requests refused by --web.config.file's basic auth, by reason (missing, malformed, "
    "bad_credentials; busy: refused while another login was being checked).",
    ("reason",),
)
# what the runner itself fills, around every check's own metrics
RUNNER_METRICS = (BUILD_INFO, CHECK_SUCCESS, CHECK_DURATION, CHECK_FAILURE_REASON, AUTH_FAILURES)

# one check's run in a lane: the check, the future the scrape waits on, its deadline
Run = tuple[Check, Future, float]


class Lane:
    """One scrape's quick checks, run in turn by one thread. The scrape may take the ones
    not yet started (`take_rest`) when the running one stalls."""

    def __init__(self, runs: list[Run], clock: Callable[[], float]):
        self._runs = deque(runs)
        self._lock = threading.Lock()
        self._clock = clock
        # when the running check began (or the lane was made: waiting for a thread counts)
        self._busy_since = clock()

    def next(self) -> Run | None:
        """The next check to run, None once the lane is empty."""
        with self._lock:
            if not self._runs:
                return None
            self._busy_since = self._clock()
            return self._runs.popleft()

    def stalls_in(self, stall: float) -> float | None:
        """Seconds until the running check has run `stall` seconds (<= 0: it has), or None
        when no check waits behind it."""
        with self._lock:
            if not self._runs:
                return None
            return self._busy_since + stall - self._clock()

    def take_rest(self) -> list[Run]:
        """The checks not yet started; the lane will not run them."""
        with self._lock:
            rest, self._runs = list(self._runs), deque()
            return rest


class ScrapeRunner:
    """Runs `checks` for each scrape; safe to call from several scrapes at once."""

    def __init__(
        self,
        checks: Sequence[Check],
        max_workers: int = 32,
        version: str = "unknown",
        clock: Callable[[], float] = time.monotonic,
        grace: float = 0.25,
        lanes: int = 2,
        lane_budget: float = 0.02,
        stall: float = 0.05,
    ):
        self.checks = list(checks)
        # the order of the exposition; two checks declaring one name differently raise here
        self.metrics = merge_specs([RUNNER_METRICS, *(c.metrics for c in self.checks)])
        # A check's own I/O may run `grace` past the collector's deadline, so that a hung
        # target is always reported the same way: check_success 0, reason timeout.
        self.grace = grace
        # the lanes take checks while their last durations add up to at most lane_budget
        # each (the seed stack's checks: about 5 ms in all); a lane's running check
        # counts as stalled after `stall`
        self.lanes = lanes
        self.lane_budget = lane_budget
        self.stall = stall
        self.version = version
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="check")
        self._lock = threading.Lock()
        self._running: dict[str, tuple[Future, float]] = {}  # check label -> its run, when it began
        self._failing: dict[str, str] = {}  # check label -> last logged failure
        self._took: dict[str, float] = {}  # check label -> how long its last run took
        self._login_failures = dict.fromkeys(LOGIN_REASONS, 0)

    def login_failed(self, reason: str) -> None:
        """Count a login refused by the web config (shown as exporter_auth_failures_total)."""
        with self._lock:
            self._login_failures[reason] = self._login_failures.get(reason, 0) + 1

    def scrape(self, budget: float) -> list[Samples]:
        """Run every check once within `budget` seconds; return their samples."""
        start = self.clock()
        head = Samples(RUNNER_METRICS)
        head.add(BUILD_INFO, 1, self.version)
        with self._lock:
            failures = list(self._login_failures.items())
        for reason, count in failures:
            head.add(AUTH_FAILURES, count, reason)
        pending: dict[str, tuple[float, Check, Future, float, bool]] = {}
        lane_of = self._plan_lanes()
        runs: list[list[Run]] = [[] for _ in range(self.lanes)]
        # the slowest last time first (new ones before all): their waits on the network then
        # overlap the quick checks' work instead of starting after it
        for check in sorted(self.checks, key=lambda c: -self._took.get(c.check_label, math.inf)):
            deadline = start + max(0.0, min(check.timeout, budget))
            with self._lock:
                # submitted under the lock: the run's own clean-up waits until it is recorded
                running = self._running.get(check.check_label)
                if running is None:
                    if check.check_label in lane_of:
                        future: Future = Future()
                        runs[lane_of[check.check_label]].append((check, future, deadline))
                    else:
                        future = self._pool.submit(self._run, check, deadline)
                    self._running[check.check_label] = (future, start)
                    pending[check.check_label] = (deadline, check, future, start, True)
                else:
                    # single flight: an overlapping scrape waits for the same run
                    pending[check.check_label] = (deadline, check, running[0], running[1], False)
        lanes = [Lane(lane_runs, self.clock) for lane_runs in runs if lane_runs]
        for lane in lanes:
            self._pool.submit(self._run_lane, lane)
        results = [head]
        in_order = [pending[c.check_label] for c in self.checks]  # the exposition keeps config order
        self._wait(in_order, lanes)
        for deadline, check, future, began, ours in sorted(in_order, key=lambda p: p[0]):
            results.append(self._result(check, future, deadline, began, ours))
        return results

    def _plan_lanes(self) -> dict[str, int]:
        """The lane of each check quick in its last run: the quickest are taken while the
        lanes' budget lasts, then dealt out longest first, each to the least loaded lane,
        so that the lanes end about together."""
        taken, left = [], self.lane_budget * self.lanes
        # list() copies in one step, while runs of other scrapes may be adding to it
        for label, took in sorted(list(self._took.items()), key=lambda item: item[1]):
            if took > min(left, self.lane_budget):
                break
            taken.append((label, took))
            left -= took
        loads = [0.0] * self.lanes
        lane_of = {}
        for label, took in reversed(taken):
            lane = loads.index(min(loads))
            lane_of[label] = lane
            loads[lane] += took
        return lane_of

    def _wait(
        self, pending: list[tuple[float, Check, Future, float, bool]], lanes: Sequence[Lane] = ()
    ) -> None:
        """Wait for the runs until each one's deadline, waking once for all that finish in
        time rather than once per check (each wake-up is a thread switch), and when a lane
        stalls."""
        for deadline in sorted({p[0] for p in pending}):
            while True:
                running = [p[2] for p in pending if p[0] >= deadline and not p[2].done()]
                left = deadline - self.clock()
                if not running or left <= 0:
                    break
                next_stall = None
                for lane in lanes:
                    when = lane.stalls_in(self.stall)
                    if when is not None and when <= 0:
                        # its running check stalled: the rest of the lane get threads of their own
                        for run in lane.take_rest():
                            self._pool.submit(self._run_into, *run)
                    elif when is not None:
                        next_stall = when if next_stall is None else min(next_stall, when)
                wait(running, timeout=left if next_stall is None else min(left, next_stall))
                if next_stall is None:
                    break

    def _run_lane(self, lane: Lane) -> None:
        while (run := lane.next()) is not None:
            self._run_into(*run)

    def _run_into(self, check: Check, future: Future, deadline: float) -> None:
        """Run a check of a lane, reporting to the future the scrape made for it."""
        if not future.set_running_or_notify_cancel():
            return  # the scrape gave up on it before it started
        try:
            result = self._run(check, deadline)
        except BaseException as exc:  # noqa: BLE001 - handed to the scrape, as the pool does
            future.set_exception(exc)
        else:
            future.set_result(result)

    def collect(self, budget: float) -> Iterator[Metric]:
        """Metric families of one scrape."""
        return families(self.metrics, self.scrape(budget))

    def close(self) -> None:
        """Stop the pool without waiting for hung checks, and close the checks."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        for check in self.checks:
            check.close()

    def _run(self, check: Check, deadline: float) -> tuple[Samples, float]:
        began = self.clock()
        try:
            out = check.samples()
            check.run(out, Deadline(deadline + self.grace, self.clock))
            took = self.clock() - began
            self._took[check.check_label] = took
            return out, took
        finally:
            with self._lock:
                self._running.pop(check.check_label, None)

    def _result(self, check: Check, future: Future, deadline: float, began: float, ours: bool) -> Samples:
        label = check.check_label
        try:
            out, elapsed = future.result(timeout=max(0.0, deadline - self.clock()))
        except (FutureTimeout, CancelledError):
            # a run started by an earlier scrape and still going is "still_running"
            reason = "timeout" if ours else "still_running"
            if ours and future.cancel():  # never started: the pool was busy
                with self._lock:
                    self._running.pop(label, None)
        except Exception as exc:  # noqa: BLE001 - a broken check is a metric, not a failed scrape
            reason = "error"
            self._log_failure(label, f"error={type(exc).__name__}: {exc}", exc)
        else:
            self._log_recovery(label)
            result = Samples(RUNNER_METRICS)  # the run's samples may be shared by overlapping scrapes
            result.extend(out)
            result.add(CHECK_SUCCESS, 1, label)
            result.add(CHECK_DURATION, elapsed, label)
            for r in CHECK_REASONS:
                result.add(CHECK_FAILURE_REASON, 0, label, r)
            return result
        if reason != "error":
            self._log_failure(label, f"reason={reason}")
        elapsed = max(0.0, self.clock() - began)
        out = check.samples()
        check.blank(out, reason, elapsed)
        result = Samples(RUNNER_METRICS)
        result.extend(out)
        result.add(CHECK_SUCCESS, 0, label)
        result.add(CHECK_DURATION, elapsed, label)
        for r in CHECK_REASONS:
            result.add(CHECK_FAILURE_REASON, 1 if r == reason else 0, label, r)
        return result

    def _log_failure(self, label: str, detail: str, exc: Exception | None = None) -> None:
        # once per change, not once per scrape: a hung target would flood the log
        with self._lock:
            if self._failing.get(label) == detail:
                return
            self._failing[label] = detail
        log.warning("check failed check=%s %s", label, detail, exc_info=exc)

    def _log_recovery(self, label: str) -> None:
        with self._lock:
            if self._failing.pop(label, None) is None:
                return
        log.info("check recovered check=%s", label)
