"""What the experts cost: full SERA against the same model without adapter experts, without
fusion experts and without both, in latency, FLOPs and parameters; then each expert alone at
the input it sees in the model; and the share of sera-b's parameters that `bias-ln` trains.

    python bench/experts.py [--preset sera-b] [--batch 1] [--repeats 5]

All latencies come from one interleaved loop in one process, so the ratios hold even when the
machine's speed drifts.
"""

from __future__ import annotations

import argparse
from typing import Any

import common
import torch

from sera_cli.model.peft import parameter_counts

VARIANTS: dict[str, dict[str, Any]] = {
    "full": {},
    "no experts": {"adapter_experts": [], "experts": []},
    "adapter experts only": {"experts": []},
    "fusion experts only": {"adapter_experts": []},
}


def model_variants(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Latency, FLOPs and parameters of each variant, timed in turn."""
    device = common.bench_device()
    models = {name: common.build(common.model_config(args.preset, **overrides)).to(device)
              for name, overrides in VARIANTS.items()}
    cfg = models["full"].cfg
    pixels, ids = common.inputs(cfg, args.batch, device)

    def forward(model: torch.nn.Module) -> Any:
        with torch.inference_mode():
            return model(pixels, ids)

    calls = {name: (lambda m=m: forward(m)) for name, m in models.items()}
    flops = common.warm_up(calls)
    timings = common.time_interleaved(calls, args.repeats, warmup=0, device=device,
                                      budget_s=args.budget)
    out = {}
    for name, model in models.items():
        out[name] = {"latency": timings[name], "flops": flops[name],
                     "params": common.count_params(model)}
    out["_full_model"] = models["full"]
    return out


def single_experts(model: torch.nn.Module, batch: int, repeats: int) -> list[dict[str, Any]]:
    """Each routed expert of the full model alone, on a random map of the shape it receives."""
    cfg = model.cfg
    grid = cfg.grid_size
    blocks = len(cfg.adapter_blocks)
    stages = [("fusion", model.fusion, cfg.experts, cfg.fusion_dim, 1)]
    first_adapter = next(iter(model.vision.adapters.values()))
    stages.append(("adapter", first_adapter.experts, cfg.adapter_experts, cfg.adapter_dim,
                   blocks))
    device = next(model.parameters()).device
    rows, calls = [], {}
    for stage, routed, names, dim, copies in stages:
        x = torch.randn(batch, dim, grid, grid, device=device)
        for name, expert in zip(names, routed.experts, strict=True):
            def call(expert: torch.nn.Module = expert, x: torch.Tensor = x) -> Any:
                with torch.inference_mode():
                    return expert(x)

            key = f"{stage}.{name}"
            calls[key] = call
            rows.append({"expert": key, "input": f"({batch}, {dim}, {grid}, {grid})",
                         "copies": copies, "params": common.count_params(expert)})
    flops = common.warm_up(calls)
    timings = common.time_interleaved(calls, repeats, warmup=0, device=device)
    for row in rows:
        row["latency"], row["flops"] = timings[row["expert"]], flops[row["expert"]]
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sera-b")
    parser.add_argument("--batch", type=int, default=1)
    common.add_timing_arguments(parser, budget=90.0)
    args = parser.parse_args(argv)
    if args.quick:
        args.preset, args.repeats = "sera-tiny", 3
    variants = model_variants(args)
    full_model = variants.pop("_full_model")
    base = variants["no experts"]
    rows = [[name, v["latency"].median, v["latency"].min, v["latency"].max,
             v["latency"].median / base["latency"].median, v["flops"] / 1e9,
             v["flops"] / base["flops"], v["params"] / 1e6, v["params"] / base["params"]]
            for name, v in variants.items()]
    common.print_table(
        f"Cost of the experts: {args.preset}, batch {args.batch}, ratios to 'no experts'",
        ["variant", "median s", "min s", "max s", "latency x", "GFLOPs", "FLOPs x",
         "params M", "params x"], rows)

    experts = single_experts(full_model, args.batch, max(args.repeats, 10))
    full_s = variants["full"]["latency"].median
    common.print_table(
        "Each expert alone (fusion: once per forward; adapter: once in each adapter block)",
        ["expert", "input", "median ms", "min ms", "max ms", "GFLOPs", "params",
         "x copies", "% of full forward"],
        [[e["expert"], e["input"], 1e3 * e["latency"].median, 1e3 * e["latency"].min,
          1e3 * e["latency"].max, e["flops"] / 1e9, e["params"], e["copies"],
          100 * e["copies"] * e["latency"].median / full_s] for e in experts])

    counts = parameter_counts(full_model)
    share = {"trainable": counts["trainable"], "total": counts["total"],
             "trainable_pct": 100 * counts["trainable"] / counts["total"],
             "backbone_trainable_pct": counts["backbone_trainable_pct"]}
    common.print_table(
        f"Trainable parameters, {args.preset} with tune={full_model.cfg.tune}",
        ["trainable", "total", "trainable %", "backbone trainable %"],
        [[share["trainable"], share["total"], share["trainable_pct"],
          share["backbone_trainable_pct"]]])

    ratio = variants["full"]["latency"].median / base["latency"].median
    result = {"preset": args.preset, "batch": args.batch, "variants": variants,
              "experts": experts, "parameters": share,
              "headline": {f"{args.preset} b{args.batch} latency full / no experts":
                           f"{ratio:.3f}x",
                           f"{args.preset} trainable share ({full_model.cfg.tune})":
                           f"{share['trainable_pct']:.1f}% of all, "
                           f"{share['backbone_trainable_pct']:.2f}% of the backbones"}}
    common.write_results("experts", result)
    return result


if __name__ == "__main__":
    main()
