"""Bad `sera train` options and --config files: the option or key is named with what it takes.

The CLI runs in-process (typer's CliRunner on the real app, `helpers.sera`), so that dozens of
cases cost a model load each rather than a Python start each.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import fails, sera

BAD_TRAIN_OPTIONS = [
    (["--topk", "0"], ["--topk 0 is out of range", "choose 1 to 4"]),
    (["--topk", "5"], ["--topk 5 is out of range"]),
    (["--experts", "shape", "--topk", "2"], ["--topk 2 is out of range", "choose 1 to 1"]),
    (["--experts", "shape,shape"], ["--experts names shape more than once"]),
    (["--adapter-experts", "spatial,spatial"], ["--adapter-experts names spatial more"]),
    (["--batch-size", "0"], ["--batch-size must be positive, got 0"]),
    (["--batch-size", "-4"], ["--batch-size must be positive, got -4"]),
    (["--lr", "0"], ["--lr must be a positive number, got 0.0"]),
    (["--lr", "-0.001"], ["--lr must be a positive number"]),
    (["--lr", "nan"], ["--lr must be a positive number, got nan"]),
    (["--epochs", "0"], ["--epochs must be positive, got 0"]),
    (["--epochs", "-3"], ["--epochs must be positive, got -3"]),
    (["--max-steps", "0"], ["--max-steps must be positive"]),
    (["--threshold", "1.5"], ["--threshold must be between 0 and 1"]),
    (["--schedule", "linear"], ["--schedule 'linear'", "step, cosine, constant"]),
    (["--tune", "lora"], ["--tune 'lora'", "bias-ln, frozen, full"]),
    (["--preset", "sera-xl"], ["unknown preset 'sera-xl'", "sera-tiny"]),
    (["--adapter-blocks", "2,9"], ["--adapter-blocks [9]", "blocks 1..4"]),
    (["--data", "/nonexistent/refer"], ["--data /nonexistent/refer is not a folder"]),
]


@pytest.mark.parametrize("options,culprits", BAD_TRAIN_OPTIONS,
                         ids=[" ".join(o) for o, _ in BAD_TRAIN_OPTIONS])
def test_bad_train_option_is_named(tmp_path: Path, options: list[str],
                                   culprits: list[str]) -> None:
    fails(sera("train", *options, "--out", tmp_path / "run"), *culprits)
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize("options,culprits", [
    (["--experts", "spatial,contxt"], ["unknown fusion expert 'contxt'", "known fusion experts:",
                                       "did you mean 'context'"]),
    (["--adapter-experts", "edge"], ["unknown adapter expert 'edge'", "boundary, spatial"]),
    (["--router", "top-k"], ["unknown router 'top-k'", "known routers: soft, topk"]),
])
def test_unknown_expert_or_router_lists_the_known(synth_data_root: Path, tmp_path: Path,
                                                  options: list[str],
                                                  culprits: list[str]) -> None:
    fails(sera("train", "--data", synth_data_root, "--max-steps", "1", "--batch-size", "4",
               *options, "--out", tmp_path / "run"), *culprits)


@pytest.mark.parametrize("text,culprits", [
    ("lr = 0.001\nlearning_rate = 3\n", ["unknown key 'learning_rate'", "known keys:"]),
    ("batch-size = 'big'\n", ["'batch-size' takes a whole number, got 'big'"]),
    ("experts = 3\n", ["'experts' takes a list of strings, got 3"]),
    ("lr = 0.001\nlr = 0.002\n", ["cannot be parsed"]),
])
def test_bad_config_file_names_the_key(tmp_path: Path, text: str, culprits: list[str]) -> None:
    config = tmp_path / "options.toml"
    config.write_text(text)
    fails(sera("train", "--config", config, "--out", tmp_path / "run"), str(config), *culprits)


def test_config_file_numbers_written_as_text_are_read(tmp_path: Path) -> None:
    from sera_cli.config.layering import build_configs, read_config_file

    config = tmp_path / "options.yaml"
    config.write_text("lr: 1e-3\nexperts: [spatial, shape]\n")  # YAML reads 1e-3 as a string
    model, train = build_configs(read_config_file(config))
    assert train.lr == 0.001 and model.topk == 2  # an unset top-k follows the experts given


def test_bad_config_files(tmp_path: Path) -> None:
    fails(sera("train", "--config", tmp_path / "none.toml"), "none.toml", "cannot read")
    bad_yaml = tmp_path / "options.yaml"
    bad_yaml.write_text("lr: [1, 2\n")
    fails(sera("train", "--config", bad_yaml), str(bad_yaml), "cannot be parsed")
    ini = tmp_path / "options.ini"
    ini.write_text("[train]\n")
    fails(sera("train", "--config", ini), str(ini), "use a .toml, .yaml or .json file")
