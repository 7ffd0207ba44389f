"""`make bench`: every benchmark in one go, each rewriting its section of docs/benchmarks.md."""

from __future__ import annotations

import sys

from bench import backup_bench, closed_loop_bench, exporter_bench, receiver_bench

BENCHMARKS = (
    ("exporter", exporter_bench.main),
    ("receiver", receiver_bench.main),
    ("backup", backup_bench.main),
    ("closed-loop", closed_loop_bench.main),
)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks named in argv (all when none); the exit status is the worst one."""
    wanted = set(argv if argv is not None else sys.argv[1:]) or {name for name, _ in BENCHMARKS}
    worst = 0
    for name, run in BENCHMARKS:
        if name in wanted:
            print(f"== bench {name}", flush=True)
            worst = max(worst, run([]) or 0)
    return worst


if __name__ == "__main__":
    sys.exit(main())
