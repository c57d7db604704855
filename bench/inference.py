"""Inference speed and memory of sera-b and sera-tiny, and sera-b's FLOP rate next to the
machine's matrix-multiply throughput.

    python bench/inference.py [--quick] [--presets sera-b,sera-tiny] [--batches 1,8]

float32 everywhere; on a CUDA machine also bf16 autocast (the path `sera eval` takes). Weights
are random: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
from typing import Any

import common
import torch

from sera_cli.engine.evaluation import autocast


def precisions(device: torch.device) -> list[str]:
    return ["fp32", "bf16"] if device.type == "cuda" else ["fp32"]


def measure(name: str, batch: int, precision: str, device: torch.device, args: argparse.Namespace,
            model: torch.nn.Module, with_matmul: bool) -> dict[str, Any]:
    """Latency and peak memory of one (preset, batch, precision); with ``with_matmul`` a large
    matrix product is timed in turn with the model, so both rates share the machine's state."""
    cfg = model.cfg
    pixels, ids = common.inputs(cfg, batch, device)

    def forward() -> Any:
        with torch.inference_mode(), autocast(device, precision):
            return model(pixels, ids)

    calls = {"forward": forward}
    if with_matmul:
        calls["matmul"], _ = common.matmul(device)
    budget = args.budget / (2 if with_matmul else 1)
    with common.peak_memory(device) as memory:
        flops = common.warm_up(calls)
        timings = common.time_interleaved(calls, args.repeats, warmup=0, device=device,
                                          budget_s=budget)
    latency = timings["forward"]
    row: dict[str, Any] = {
        "preset": name, "batch": batch, "precision": precision, "device": device,
        "latency": latency, "images_per_s": batch / latency.median,
        "gflops_per_image": flops["forward"] / batch / 1e9, **memory,
    }
    if with_matmul:
        row["matmul_gflops"] = flops["matmul"] / timings["matmul"].median / 1e9
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="sera-b,sera-tiny")
    parser.add_argument("--batches", default="1,8")
    common.add_timing_arguments(parser, budget=60.0)
    args = parser.parse_args(argv)
    if args.quick:
        args.presets, args.repeats = "sera-tiny", 3
    device = common.bench_device()
    rows, efficiency = [], []
    for name in args.presets.split(","):
        model = common.build(common.model_config(name)).to(device)
        for batch in (int(b) for b in args.batches.split(",")):
            for precision in precisions(device):
                row = measure(name, batch, precision, device, args, model,
                              with_matmul=precision == "fp32")
                rows.append(row)
                if "matmul_gflops" in row:
                    rate = row["gflops_per_image"] * batch / row["latency"].median
                    efficiency.append({"preset": name, "batch": batch, "model_gflops": rate,
                                       "matmul_gflops": row["matmul_gflops"],
                                       "ratio": rate / row["matmul_gflops"]})
        del model
    common.print_table(
        f"Inference ({device}, {torch.get_num_threads()} threads): latency over repeated runs "
        "after one warm-up (the run that counts its FLOPs)",
        ["preset", "batch", "precision", "median s", "min s", "max s", "images/s",
         "peak MiB", "added MiB"],
        [[r["preset"], r["batch"], r["precision"], r["latency"].median, r["latency"].min,
          r["latency"].max, r["images_per_s"], r["peak_mib"], r["added_mib"]] for r in rows])
    common.print_table(
        "Efficiency: model FLOP rate vs a 4096x4096 float32 matmul timed in turn with it "
        "(FLOPs counted by FlopCounterMode on the warm-up run at the same batch)",
        ["preset", "batch", "model GFLOP/s", "matmul GFLOP/s", "ratio"],
        [[e["preset"], e["batch"], e["model_gflops"], e["matmul_gflops"],
          f"{100 * e['ratio']:.0f}%"] for e in efficiency])
    headline = {f"{e['preset']} b{e['batch']} FLOP rate / matmul": f"{100 * e['ratio']:.0f}%"
                for e in efficiency if e["preset"] == "sera-b"}
    result = {"rows": rows, "efficiency": efficiency, "headline": headline}
    common.write_results("inference", result)
    return result


if __name__ == "__main__":
    main()
