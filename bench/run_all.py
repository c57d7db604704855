"""All benchmarks in one process, one after another, then a summary of their headline figures.

    python bench/run_all.py [--quick] [--train-to-miou 50]

Runs inference, experts, training and startup (each writes bench/results/<name>.json) and
writes bench/results/summary.json. `--quick` is passed to every script; `--train-to-miou` to
training only (it adds about 15 minutes on 2 cores).

Each script gets a time budget (`--budget`: seconds of timed rounds, past which it stops once
it has 3 rounds), chosen so that the default mode stays under 10 minutes on 2 idle cores. What
a budget cannot cut is model building, FLOP counting, warm-up and the first 3 rounds; estimated
from single sera-b runs on 2 cores (b1 forward ~3 s, 4096^3 matmul ~1.5 s):
inference ~3 min (sera-b batch 8 alone: 4 forwards of ~25 s), experts ~2 min (four sera-b
models), training ~0.5 min, startup ~1.5 min (a 2-step `sera train` for the checkpoint, then
1 + 5 rounds of the three commands). `--quick` (sera-tiny only, 3 rounds) takes 2-4 minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from typing import Any

import common
import experts
import inference
import startup
import training

#: (name, main, --budget seconds) in the order they run.
BENCHES: list[tuple[str, Any, float]] = [
    ("inference", inference.main, 60.0),
    ("experts", experts.main, 45.0),
    ("training", training.main, 30.0),
    ("startup", startup.main, 45.0),
]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    parser.add_argument("--train-to-miou", type=float, default=None, metavar="MIOU",
                        help="pass --train-to-miou to training (~15 min more)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    failed: dict[str, str] = {}
    for name, bench_main, budget in BENCHES:
        bench_args = ["--budget", f"{budget:g}"] + (["--quick"] if args.quick else [])
        if name == "training" and args.train_to_miou is not None:
            bench_args += ["--train-to-miou", f"{args.train_to_miou:g}"]
        print(f"\n=== {name}: python bench/{name}.py {' '.join(bench_args)}", flush=True)
        start = time.perf_counter()
        try:
            results[name] = bench_main(bench_args)
        except Exception as exc:  # the others still run; the exit status says it failed
            traceback.print_exc()
            failed[name] = f"{type(exc).__name__}: {exc}"
        except SystemExit as exc:  # a script's own one-line refusal
            failed[name] = str(exc.code)
            print(f"{name} stopped: {exc.code}", file=sys.stderr)
        seconds[name] = time.perf_counter() - start
        common.release_memory()  # the next script's peak memory starts from what is in use

    rows = []
    for name, result in results.items():
        headline = result.get("headline") or {"(no headline figures in this mode)": "-"}
        rows += [[name, key, value] for key, value in headline.items()]
    rows += [[name, "FAILED", reason] for name, reason in failed.items()]
    common.print_table("Summary: headline figures (details in each table above and in "
                       "bench/results/<bench>.json)", ["bench", "figure", "value"], rows)
    total = time.perf_counter() - began
    common.print_table("Time per benchmark (wall, this process)", ["bench", "budget s", "s"],
                       [[name, budget, seconds[name]] for name, _, budget in BENCHES]
                       + [["all", "", total]])
    summary = {"quick": args.quick, "train_to_miou": args.train_to_miou,
               "budgets_s": {name: budget for name, _, budget in BENCHES},
               "seconds": seconds, "total_s": total, "failed": failed,
               "headline": {name: r.get("headline", {}) for name, r in results.items()}}
    common.write_results("summary", summary)
    return summary


if __name__ == "__main__":
    sys.exit(1 if main()["failed"] else 0)
