"""What a run folder holds, exactly: config.json's own keys and layout, which backbone tensors
the weights keep (a randomly initialized backbone whole, a hub one only where trained), and the
one-line errors a damaged weights file gives, word for word."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from sera_cli import __version__
from sera_cli.config import ModelConfig
from sera_cli.errors import RenamedKeyWarning, SeraError
from sera_cli.model.sera import build_model
from sera_cli.registry import Registry
from sera_cli.runs.checkpoints import (
    FORMAT_VERSION,
    init_from_run,
    load_run,
    read_config,
    save_run,
)


@pytest.fixture
def bias_ln_model(tiny_cfg: ModelConfig, builtin_registry: Registry) -> torch.nn.Module:
    return build_model(dataclasses.replace(tiny_cfg, tune="bias-ln"), builtin_registry)


def test_config_json_names_its_format_version_and_full_flag_and_is_indented(
        tmp_path: Path, bias_ln_model: torch.nn.Module, builtin_registry: Registry) -> None:
    save_run(tmp_path / "run", bias_ln_model, builtin_registry)
    text = (tmp_path / "run" / "config.json").read_text()
    config = json.loads(text)
    assert list(config)[:2] == ["format_version", "sera_version"]
    assert config["format_version"] == FORMAT_VERSION and config["sera_version"] == __version__
    assert config["full_weights"] is False
    assert text == json.dumps(config, indent=2)  # diffable by people, not one long line


def test_a_randomly_initialized_backbone_is_kept_whole_even_when_frozen(
        tmp_path: Path, bias_ln_model: torch.nn.Module, builtin_registry: Registry) -> None:
    """No hub weights to rebuild it from: every backbone tensor must be in the file."""
    save_run(tmp_path / "run", bias_ln_model, builtin_registry)
    keys = set(load_file(tmp_path / "run" / "model.safetensors"))
    assert set(bias_ln_model.state_dict()) == keys


def test_only_the_hub_backbone_is_trimmed_to_its_trained_tensors(
        tmp_path: Path, bias_ln_model: torch.nn.Module, builtin_registry: Registry) -> None:
    cfg = bias_ln_model.cfg
    bias_ln_model.cfg = dataclasses.replace(  # as if the text tower came from the hub
        cfg, text=dataclasses.replace(cfg.text, pretrained="openai"))
    save_run(tmp_path / "run", bias_ln_model, builtin_registry)
    keys = set(load_file(tmp_path / "run" / "model.safetensors"))
    text = {k for k in keys if k.startswith("text.tower.")}
    assert text and all(bias_ln_model.get_parameter(k).requires_grad for k in text)
    vision = {k for k in bias_ln_model.state_dict() if k.startswith("vision.dinov2.")}
    assert vision <= keys  # still random: kept whole
    full = save_run(tmp_path / "full", bias_ln_model, builtin_registry, full=True)
    assert set(load_file(full / "model.safetensors")) == set(bias_ln_model.state_dict())
    assert json.loads((full / "config.json").read_text())["full_weights"] is True


def test_weights_that_lack_a_tensor_name_the_first_and_count_them(
        tmp_path: Path, bias_ln_model: torch.nn.Module, builtin_registry: Registry) -> None:
    run = save_run(tmp_path / "run", bias_ln_model, builtin_registry)
    state = load_file(run / "model.safetensors")
    first, second = [k for k in bias_ln_model.state_dict() if k in state][:2]  # model order
    save_file({k: v for k, v in state.items() if k not in (first, second)},
              run / "model.safetensors")
    with pytest.raises(SeraError) as caught:
        load_run(run, builtin_registry)
    assert str(caught.value) == f"{run / 'model.safetensors'} lacks tensor '{first}' (2 missing)"


def test_weights_with_a_tensor_the_model_lacks_are_refused_word_for_word(
        tmp_path: Path, bias_ln_model: torch.nn.Module, builtin_registry: Registry) -> None:
    run = save_run(tmp_path / "run", bias_ln_model, builtin_registry)
    state = load_file(run / "model.safetensors")
    save_file({**state, "fusion.stray": torch.zeros(1)}, run / "model.safetensors")
    with pytest.raises(SeraError) as caught:
        load_run(run, builtin_registry)
    assert str(caught.value) == (f"{run / 'model.safetensors'}: tensor 'fusion.stray' does not "
                                 "exist in the model built from its config.json")


def test_init_from_copies_the_heads_unless_told_not_to(
        tmp_path: Path, tiny_cfg: ModelConfig, builtin_registry: Registry) -> None:
    torch.manual_seed(3)
    source = save_run(tmp_path / "src", build_model(tiny_cfg, builtin_registry),
                      builtin_registry)
    theirs = load_file(source / "model.safetensors")
    head = next(k for k in theirs if k.startswith("decoder.") and theirs[k].dim() == 2)
    torch.manual_seed(4)
    model = build_model(tiny_cfg, builtin_registry)
    assert not torch.equal(model.state_dict()[head], theirs[head])
    init_from_run(model, source, registry=builtin_registry)  # heads by default
    assert torch.equal(model.state_dict()[head], theirs[head])


def _run_with_config(tmp_path: Path, config: object) -> Path:
    """A run folder whose config.json holds ``config`` (read_config reads nothing else)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config))
    return run


def test_a_config_json_that_cannot_be_read_is_named_with_the_reason(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "config.json").mkdir(parents=True)  # an OSError other than FileNotFoundError
    with pytest.raises(OSError) as reason:
        (run / "config.json").read_text()
    assert reason.value.strerror  # "Is a directory" on Linux and macOS
    with pytest.raises(SeraError) as caught:
        read_config(run)
    assert str(caught.value) == f"cannot read {run / 'config.json'}: {reason.value.strerror}"


@pytest.mark.parametrize("config", [[{"model": {}}], {"format_version": 1}, {"model": "sera-b"}],
                         ids=["not an object", "no model", "model not a table"])
def test_a_config_without_a_model_section_is_not_a_run_config(tmp_path: Path,
                                                              config: object) -> None:
    run = _run_with_config(tmp_path, config)
    with pytest.raises(SeraError) as caught:
        read_config(run)
    assert str(caught.value) == (f"{run / 'config.json'} has no 'model' section: not a sera run "
                                 "config")


@pytest.mark.parametrize("version", [True, False, -1, "1", 1.0, None])
def test_a_format_version_that_is_not_a_whole_number_from_0_is_refused(
        tmp_path: Path, version: object) -> None:
    """A bool is an int to Python, but no sera writes one."""
    run = _run_with_config(tmp_path, {"format_version": version, "model": {}})
    with pytest.raises(SeraError) as caught:
        read_config(run)
    assert str(caught.value) == (f"{run / 'config.json'} has an invalid format_version "
                                 f"{version!r}; the file was edited or damaged")


@pytest.mark.parametrize("config", [{"model": {}}, {"format_version": 0, "model": {}}],
                         ids=["no format_version", "format_version 0"])
def test_a_config_of_format_0_or_none_named_is_read(tmp_path: Path,
                                                    config: dict[str, object]) -> None:
    """Runs written before format_version existed."""
    run = _run_with_config(tmp_path, config)
    assert read_config(run) == config


def test_a_sera_0_1_key_is_read_under_its_new_name_with_one_warning(tmp_path: Path) -> None:
    run = _run_with_config(tmp_path, {"format_version": 1, "model": {"top_k": 2}})
    with pytest.warns(RenamedKeyWarning) as caught:
        config = read_config(run)
    assert config == {"format_version": 1, "model": {"topk": 2}}
    assert [str(w.message) for w in caught] == [
        f"{run / 'config.json'}: 'top_k' is read as 'topk' (their names since sera 0.2)"]
