"""Inference speed and memory of sera-b and sera-tiny in float32 and bf16, each precision's FLOP
rate next to the machine's matrix-multiply throughput in the same dtype, and how often the bf16
masks agree with the float32 ones.

    python bench/inference.py [--quick] [--presets sera-b,sera-tiny] [--batches 1,8]

bf16 is measured where the device multiplies it fast (CUDA, or a CPU with AMX or AVX512-BF16:
`sera_cli.engine.devices.fast_bf16`), as `sera predict` runs it: the weights converted to bf16
(`devices.lower`), float32 probabilities. For one (preset, batch) the float32 forward, the bf16
forward and a 2048 x 2048 matmul in each dtype are timed in turn in one loop, so every ratio is
of figures taken under the same load. Weights are random: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
from typing import Any

import common
import torch

from sera_cli.config import THRESHOLD_DEFAULT
from sera_cli.engine.devices import fast_bf16, lower

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def precisions(device: torch.device) -> list[str]:
    return ["fp32", "bf16"] if fast_bf16(device) else ["fp32"]


def measure(name: str, batch: int, device: torch.device, args: argparse.Namespace,
            models: dict[str, torch.nn.Module]) -> list[dict[str, Any]]:
    """One row per precision of ``models`` (precision -> the model in it): latency, FLOP rate,
    the same-dtype matmul rate timed in turn with it, and peak memory of the whole loop."""
    cfg = next(iter(models.values())).cfg
    pixels, ids = common.inputs(cfg, batch, device)
    outputs: dict[str, Any] = {}

    def forward(precision: str) -> Any:
        def call() -> None:
            with torch.inference_mode():
                out = models[precision](pixels.to(DTYPES[precision]), ids)
                outputs[precision] = torch.sigmoid(out.logits.float())  # masks from float32
        return call

    calls: dict[str, Any] = {}
    for precision in models:
        calls[f"forward {precision}"] = forward(precision)
        calls[f"matmul {precision}"], _ = common.matmul(device, dtype=DTYPES[precision])
    with common.peak_memory(device) as memory:
        flops = common.warm_up(calls)
        timings = common.time_interleaved(calls, args.repeats, warmup=0, device=device,
                                          budget_s=args.budget)
    rows = []
    for precision in models:
        latency, mm = timings[f"forward {precision}"], timings[f"matmul {precision}"]
        model_rate = flops[f"forward {precision}"] / latency.median / 1e9
        matmul_rate = flops[f"matmul {precision}"] / mm.median / 1e9
        rows.append({"preset": name, "batch": batch, "precision": precision, "device": device,
                     "latency": latency, "images_per_s": batch / latency.median,
                     "gflops_per_image": flops[f"forward {precision}"] / batch / 1e9,
                     "model_gflops": model_rate, "matmul_gflops": matmul_rate,
                     "matmul": mm, "ratio": model_rate / matmul_rate, **memory})
    if "bf16" in outputs:
        masks = {p: outputs[p] >= THRESHOLD_DEFAULT for p in outputs}
        agreement = (masks["fp32"] == masks["bf16"]).float().mean().item()
        rows[-1]["mask_agreement"] = agreement
        rows[-1]["speedup"] = rows[0]["latency"].median / rows[-1]["latency"].median
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="sera-b,sera-tiny")
    parser.add_argument("--batches", default="1,8")
    common.add_timing_arguments(parser, budget=60.0)
    args = parser.parse_args(argv)
    if args.quick:
        args.presets, args.repeats = "sera-tiny", 3
    device = common.bench_device()
    rows = []
    for name in args.presets.split(","):
        cfg = common.model_config(name)
        # built twice from one seed: the same weights (a deep copy would share the forward hooks
        # that AdaptedDinov2 registers on its own blocks)
        models = {p: lower(common.build(cfg).to(device), p) for p in precisions(device)}
        for batch in (int(b) for b in args.batches.split(",")):
            rows += measure(name, batch, device, args, models)
        del models
        common.release_memory()
    common.print_table(
        f"Inference ({device}, {torch.get_num_threads()} threads, CPU features "
        f"{common.cpu_features()}): latency over repeated runs after one warm-up (the run that "
        "counts its FLOPs); precisions of one (preset, batch) timed in turn; bf16 = weights in "
        "bf16; peak and added memory are the whole loop's",
        ["preset", "batch", "precision", "median s", "min s", "max s", "images/s",
         "x fp32", "mask agreement", "peak MiB", "added MiB"],
        [[r["preset"], r["batch"], r["precision"], r["latency"].median, r["latency"].min,
          r["latency"].max, r["images_per_s"], f"{r['speedup']:.2f}x" if "speedup" in r else "-",
          f"{100 * r['mask_agreement']:.2f}%" if "mask_agreement" in r else "-",
          r["peak_mib"], r["added_mib"]] for r in rows])
    common.print_table(
        "Efficiency: model FLOP rate vs 2048 x 2048 matmuls of the same dtype timed in turn with "
        "it (FLOPs counted by FlopCounterMode on the warm-up run at the same batch)",
        ["preset", "batch", "precision", "model GFLOP/s", "matmul GFLOP/s", "ratio"],
        [[r["preset"], r["batch"], r["precision"], r["model_gflops"], r["matmul_gflops"],
          f"{100 * r['ratio']:.0f}%"] for r in rows])
    result: dict[str, Any] = {"rows": rows}
    headline = {}
    for r in rows:
        if r["preset"] == "sera-b":
            headline[f"sera-b b{r['batch']} {r['precision']} FLOP rate / {r['precision']} "
                     "matmul"] = f"{100 * r['ratio']:.0f}%"
            if r["batch"] == 1:
                result[f"{r['precision']}_over_matmul"] = r["ratio"]
                if "speedup" in r:
                    result["bf16_speedup"] = r["speedup"]
                    result["bf16_mask_agreement"] = r["mask_agreement"]
                    headline["sera-b b1 bf16 speed-up"] = f"{r['speedup']:.2f}x"
                    headline["sera-b b1 bf16 mask agreement"] = f"{100 * r['mask_agreement']:.2f}%"
    result["headline"] = headline
    common.write_results("inference", result)
    return result


if __name__ == "__main__":
    main()
