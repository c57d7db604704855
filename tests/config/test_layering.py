"""A run's configuration from presets, files and options: names are field names, presets are
data, old config.json keys still load."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sera_cli.config import ModelConfig, TrainConfig, preset, preset_names, train_defaults
from sera_cli.config.layering import FIELDS, RESUME_SAFE, SOURCE_KEYS, build_configs, changed_by
from sera_cli.errors import RenamedKeyWarning, SeraError


def test_every_train_option_is_a_config_field_of_the_same_name() -> None:
    """No alias table: `sera train --X` sets the field X (or chooses a source)."""
    from typer.main import get_command

    from sera_cli.cli.main import app

    train = get_command(app).commands["train"]  # type: ignore[attr-defined]
    not_values = {"ctx", "config", "resume", "as_json"}
    names = {p.name for p in train.params} - not_values
    assert names - set(FIELDS) - SOURCE_KEYS == set()
    assert RESUME_SAFE <= set(FIELDS)


def test_an_option_reaches_its_field() -> None:
    model, train = build_configs({"experts": "shape,context", "topk": 1, "router": "topk",
                                  "z_loss": 0.5, "lr": 3e-3, "adapter_blocks": "1,3"})
    assert model.experts == ["shape", "context"] and model.topk == 1
    assert model.loss.z_loss == 0.5 and model.adapter_blocks == [1, 3]
    assert train.lr == 3e-3


def test_presets_are_data_files_with_their_training_defaults() -> None:
    assert preset_names() == ["sera-b", "sera-l", "sera-tiny"]
    tiny = preset("sera-tiny")
    assert (tiny.vision.hub_id, tiny.vision.hidden_size, tiny.image_size) == (None, 96, 128)
    assert tiny.tune == "full" and tiny.loss.dice == 1.0 and tiny.text.quick_gelu is False
    assert preset("sera-b") == ModelConfig()  # the paper's model is the dataclass defaults
    assert preset("sera-l").adapter_blocks == [3, 7, 11, 15, 19, 23]
    assert train_defaults("sera-tiny")["schedule"] == "cosine"
    assert train_defaults("sera-b") == {}
    with pytest.raises(SeraError, match="unknown preset 'sera-x'; known presets: sera-b"):
        preset("sera-x")


def test_a_preset_sets_training_values_for_one_data_set_under_the_others() -> None:
    plain = build_configs({"dataset": "refcoco"})[1]
    generalized = build_configs({"dataset": "grefcoco"})[1]
    assert (plain.epochs, plain.single_target_fraction) == (8, 0.0)
    assert (generalized.epochs, generalized.single_target_epochs) == (10, 7)
    assert generalized.lr == plain.lr == 1e-3  # the preset's other values still apply
    chosen = build_configs({"dataset": "grefcoco", "epochs": 4})[1]  # an option still wins
    assert (chosen.epochs, chosen.single_target_fraction) == (4, 0.7)
    assert build_configs({"preset": "sera-b", "dataset": "grefcoco"})[1].epochs == 65


def test_a_bad_value_for_any_data_set_fails_whatever_the_data(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sera_cli.config import presets

    bad = {"model": {}, "train": {}, "datasets": {"grefcoco": {"epoch": 10}}}
    monkeypatch.setattr(presets, "_read", lambda name: bad)
    with pytest.raises(SeraError, match=r"unknown key\(s\) in train config: epoch;"):
        train_defaults("sera-b", "refcoco")


def test_old_config_json_keys_load_under_their_new_names() -> None:
    old = {**ModelConfig().to_dict(), "loss": {"bce": 1.0, "dice": 0.5, "z": 0.1,
                                               "balance": 0.2, "assignment": 0.3}}
    old["fusion_experts"] = old.pop("experts")
    old["fusion_router"] = old.pop("router")
    old["top_k"] = old.pop("topk")
    old["top_k"] = 2
    with pytest.warns(RenamedKeyWarning, match="'top_k' is read as 'topk'"):
        cfg = ModelConfig.from_dict(json.loads(json.dumps(old)))
    assert cfg.topk == 2 and cfg.experts == ModelConfig().experts
    assert (cfg.loss.z_loss, cfg.loss.balance_loss, cfg.loss.assignment_loss) == (0.1, 0.2, 0.3)
    both = {**ModelConfig().to_dict(), "top_k": 3}
    with pytest.raises(SeraError, match="both 'top_k'.*and 'topk'"):
        ModelConfig.from_dict(both)


def test_changed_by_names_only_values_that_differ() -> None:
    model, train = build_configs({"preset": "sera-tiny"})
    assert changed_by({"lr": train.lr, "workers": 0}, model, train) == []
    assert changed_by({"lr": 0.5, "topk": "2", "preset": "sera-b"}, model, train) == [
        "preset", "lr", "topk"]


def test_train_config_round_trips_through_json() -> None:
    _, train = build_configs({"milestones": "0.25,0.5"})
    assert TrainConfig.from_dict(json.loads(json.dumps(dataclasses.asdict(train)))) == train


def test_config_and_registry_import_no_torch() -> None:
    code = ("import sera_cli.config, sera_cli.config.layering, sera_cli.registry, sys; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).parent)
    assert done.returncode == 0, done.stderr
