"""``sera train``: options in, a run folder out. The loop itself is ``sera_cli.engine.training``.

Each option is named after the config field it sets (``--topk`` sets ``ModelConfig.topk``), so
the options typed on the command line are handed to ``config.layering`` by name."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

O = typer.Option  # noqa: E741 - keeps the long option list readable


def train(
    ctx: typer.Context,
    preset: Annotated[str | None, O(help="Model preset: sera-tiny (CPU), sera-b (paper), "
                                         "sera-l.")] = None,
    data: Annotated[Path | None, O(help="Data root in the refer layout; default: the "
                                        "synthetic set, generated on first use.")] = None,
    dataset: Annotated[str | None, O(help="Data set under the root: refcoco, refcoco+, "
                                          "refcocog, grefcoco, synth.")] = None,
    split_by: Annotated[str | None, O(help="refs file: unc, umd, google.")] = None,
    experts: Annotated[str | None, O(help="Fusion experts, comma-separated ('' for none).")
                       ] = None,
    adapter_experts: Annotated[str | None, O(help="SERA-Adapter experts, comma-separated.")
                               ] = None,
    topk: Annotated[int | None, O(help="Experts kept per sample by the fusion router.")] = None,
    router: Annotated[str | None, O(help="Fusion router name.")] = None,
    sentence_routing: Annotated[bool | None, O("--sentence-routing/--no-sentence-routing",
                                               help="Routers also see the expression's "
                                                    "sentence feature (default off: pooled "
                                                    "visual features, the paper's).")] = None,
    adapter_blocks: Annotated[str | None, O(help="DINOv2 blocks (from 1) with adapters, "
                                                 "comma-separated.")] = None,
    tune: Annotated[str | None, O(help="Backbone tuning: bias-ln, frozen, full.")] = None,
    context_length: Annotated[int | None, O(help="Tokens per expression, start and end "
                                                 "included (default: 22 for refcocog, else "
                                                 "17).")] = None,
    epochs: Annotated[int | None, O(help="Passes over the training split.")] = None,
    single_target_fraction: Annotated[float | None, O(help="Fraction F in [0, 1): the first "
                                                           "floor(F x epochs) epochs draw only "
                                                           "expressions naming one object; "
                                                           "no-target and multi-target ones "
                                                           "join after.")
                                      ] = None,
    max_steps: Annotated[int | None, O(help="Stop after this many steps.")] = None,
    batch_size: Annotated[int | None, O(help="Samples per step (per process).")] = None,
    lr: Annotated[float | None, O(help="Adam learning rate.")] = None,
    backbone_lr_mult: Annotated[float | None, O(help="LR multiplier for tuned backbone "
                                                     "parameters.")] = None,
    weight_decay: Annotated[float | None, O(help="Adam weight decay.")] = None,
    schedule: Annotated[str | None, O(help="LR schedule: step, cosine, constant.")] = None,
    milestones: Annotated[str | None, O(help="Step schedule: fractions of training where "
                                             "LR is multiplied by gamma.")] = None,
    gamma: Annotated[float | None, O(help="Step schedule factor.")] = None,
    warmup_steps: Annotated[int | None, O(help="Linear warm-up steps.")] = None,
    grad_clip: Annotated[float | None, O(help="Gradient norm clip (0: off).")] = None,
    dice: Annotated[float | None, O(help="Dice loss weight.")] = None,
    z_loss: Annotated[float | None, O(help="Router z-loss weight.")] = None,
    balance_loss: Annotated[float | None, O(help="Load-balance loss weight.")] = None,
    assignment_loss: Annotated[float | None, O(help="Token-assignment loss weight.")] = None,
    no_target_head: Annotated[bool | None, O("--no-target-head/--no-no-target-head",
                                             help="A head that says an expression names "
                                                  "nothing (default: on when the training "
                                                  "split has such expressions).")] = None,
    no_target_loss: Annotated[float | None, O(help="No-target head BCE weight.")] = None,
    seed: Annotated[int | None, O(help="Random seed (weights, data order, augmentation).")
                    ] = None,
    device: Annotated[str | None, O(help="auto, cpu or cuda.")] = None,
    precision: Annotated[str | None, O(help="auto (bf16 autocast on CUDA; on a CPU with "
                                            "bf16 units the projector alone in bf16; else "
                                            "fp32), fp32, bf16.")] = None,
    workers: Annotated[int | None, O(help="Data-loading worker processes.")] = None,
    augment: Annotated[bool | None, O("--augment/--no-augment",
                                      help="Expression-safe augmentation.")] = None,
    skip_bad: Annotated[bool | None, O("--skip-bad", help="Leave out broken data entries.")
                        ] = None,
    log_every: Annotated[int | None, O(help="Steps between log lines.")] = None,
    save_every: Annotated[int | None, O(help="Steps between checkpoints (0: each epoch).")
                          ] = None,
    val_every: Annotated[int | None, O(help="Steps between validations (0: at each epoch's "
                                            "end only).")] = None,
    threshold: Annotated[float | None, O(help="Mask probability threshold for validation.")
                         ] = None,
    init_from: Annotated[Path | None, O(help="Start from this run's weights: its backbones, "
                                            "and its heads unless --no-init-heads.")] = None,
    init_heads: Annotated[bool | None, O("--init-heads/--no-init-heads",
                                         help="With --init-from: also take its adapters, "
                                              "experts, neck and decoder.")] = None,
    save_full: Annotated[bool | None, O("--save-full", help="Also save frozen backbone "
                                                            "weights.")] = None,
    out: Annotated[Path | None, O(help="Run folder (default: runs/<time>-<preset>).")] = None,
    config: Annotated[Path | None, O(help="TOML/YAML/JSON file of options; the command "
                                          "line overrides it.")] = None,
    resume: Annotated[Path | None, O(help="Continue an interrupted run folder.")] = None,
    vision_weights: Annotated[str | None, O(help="DINOv2 weights folder (else "
                                                 "$SERA_VISION_WEIGHTS or the hub).")] = None,
    text_weights: Annotated[str | None, O(help="open_clip CLIP folder with "
                                               "open_clip_config.json (else "
                                               "$SERA_TEXT_WEIGHTS or the hub).")] = None,
    as_json: Annotated[bool, O("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Train SERA. A bare `sera train` trains sera-tiny on the synthetic set on the CPU."""
    from sera_cli.cli.progress import TrainProgress, bar, err
    from sera_cli.engine.training import Trainer

    given = _given_on_command_line(ctx)
    if resume is not None:
        model_cfg, train_cfg = _resumed(resume, given, config)
        run = resume
    else:
        model_cfg, train_cfg, run = _fresh(given, config, out, vision_weights, text_weights)
    quiet = as_json or os.environ.get("RANK", "0") != "0"  # one progress bar under torchrun
    data_root = _data_root(train_cfg, quiet)
    with bar(quiet=quiet) as progress:
        trainer = Trainer(model_cfg, train_cfg, run, data_root, reporter=TrainProgress(progress),
                          vision_weights=vision_weights, text_weights=text_weights)
        if resume is not None:
            trainer.resume()
        summary = trainer.fit()
    if as_json:
        typer.echo(json.dumps(summary))
    elif trainer.dist.main:
        err.print(f"run saved in {summary['run']} (best val mIoU {summary['best_val_miou']:.2f})")


#: Parameters of `sera train` that are not configuration values.
_NOT_VALUES = {"config", "resume", "as_json", "out", "vision_weights", "text_weights"}


def _given_on_command_line(ctx: typer.Context) -> dict[str, Any]:
    """The options the user typed, by name: each is the config field of the same name."""
    return {name: value for name, value in ctx.params.items()
            if name not in _NOT_VALUES and value is not None
            and getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"}


def _fresh(given: dict[str, Any], config: Path | None, out: Path | None,
           vision_weights: str | None, text_weights: str | None) -> tuple[Any, Any, Path]:
    """A new run's configs: the layered values, with backbones as the pretrained weights are
    (a resumed run keeps its own, and weights that differ from it are refused)."""
    from sera_cli.config.layering import build_configs, read_config_file
    from sera_cli.model.backbones import match_weights
    from sera_cli.runs.folders import new_run_dir, runs_root

    values = {**(read_config_file(config) if config else {}), **given}
    model_cfg, train_cfg = build_configs(values)
    model_cfg = match_weights(model_cfg, vision_weights, text_weights)
    out = out or (Path(values["out"]) if values.get("out") else None)
    return model_cfg, train_cfg, out or new_run_dir(runs_root(), model_cfg.preset)


def _resumed(run: Path, given: dict[str, Any], config: Path | None) -> tuple[Any, Any]:
    """The run's own configs; options that would change it are refused, except those that
    cannot change its result (RESUME_SAFE), which apply (docs/cli.md, "Resuming")."""
    from sera_cli.config.layering import RESUME_SAFE, changed_by, convert, option
    from sera_cli.errors import SeraError
    from sera_cli.runs.checkpoints import read_config
    from sera_cli.runs.folders import last_checkpoint

    if config is not None:
        raise SeraError(f"--resume {run} continues the run with its own configuration; "
                        f"--config {config} cannot be applied to it")
    stored = read_config(last_checkpoint(run))  # the run's own config.json comes later
    from sera_cli.config import ModelConfig, TrainConfig

    model_cfg = ModelConfig.from_dict(stored["model"])
    train_cfg = TrainConfig.from_dict(stored["train"])
    changed = changed_by(given, model_cfg, train_cfg)
    refused = [name for name in changed if name not in RESUME_SAFE]
    if refused:
        raise SeraError(f"--resume {run} continues the run as it was configured; "
                        f"{', '.join(option(n) for n in refused)} would change it: start a new "
                        "run instead (sera train --out NEW ...)")
    for name in changed:
        setattr(train_cfg, name, convert(name, given[name]))
    return model_cfg, train_cfg.validate()


def _data_root(train_cfg: Any, quiet: bool) -> Path:
    from sera_cli.errors import SeraError

    if train_cfg.data is None:
        from sera_cli.cli.progress import synthetic_data

        root = synthetic_data(quiet)
        train_cfg.data = str(root)
        return root
    root = Path(train_cfg.data)
    if not root.is_dir():
        raise SeraError(f"--data {root} is not a folder")
    return root
