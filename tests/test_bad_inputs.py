"""Every entry point fails well on bad input: one `error: ...` line naming the culprit, a non-zero
exit code, no traceback (unless --debug). Valid-but-unusual images must work instead.

The CLI runs in-process (typer's CliRunner on the real app), so that dozens of cases cost a model
load each rather than a Python start each.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import Result
from PIL import Image
from typer.testing import CliRunner

from sera_cli.cli.main import ENV_DEBUG, app
from sera_cli.data import tokenize as tokenize_module
from sera_cli.errors import SeraError
from sera_cli.registry import ENV_LOAD, ENV_PLUGINS, default_registry

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Built-in plugins only, no debug; `sera -p` and `--debug` write os.environ: undo that."""
    monkeypatch.setenv(ENV_LOAD, "builtin")
    monkeypatch.setenv(ENV_PLUGINS, "")
    monkeypatch.setenv(ENV_DEBUG, "")
    default_registry.cache_clear()
    yield
    default_registry.cache_clear()


def sera(*args: Any) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def fails(result: Result, *culprits: str, code: int = 1) -> str:
    """Assert a clean failure: exit code, one `error:` line naming every culprit, no traceback.
    Returns the error line."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    assert "Traceback" not in result.output
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip().endswith(errors[0]), "the error is the last thing printed"
    for culprit in culprits:
        assert culprit in errors[0], (culprit, errors[0])
    return errors[0]


def usage_error(result: Result, option: str) -> None:
    """Click's own usage errors (a value outside an option's declared range, an unknown option):
    exit code 2 and the option named, no traceback."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert option in result.stderr and "Traceback" not in result.output


# ------------------------------------------------------------------------------------- images


def _huge_png(path: Path, width: int, height: int) -> Path:
    """A valid 8x8 PNG whose header claims width x height: decoding it would allocate that."""
    Image.new("L", (8, 8)).save(path)
    raw = bytearray(path.read_bytes())
    ihdr = raw[12:29]  # b"IHDR" + width, height, depth, colour type, ... (13 bytes)
    ihdr[4:12] = struct.pack(">II", width, height)
    raw[12:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(raw))
    return path


def _blank_png(path: Path, width: int, height: int) -> Path:
    """A genuine all-black grayscale PNG, compressed row by row (~100 KB for 10^8 pixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    packer, row = zlib.compressobj(9), b"\0" * (width + 1)  # filter byte, then the pixels
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad-images")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(d / "ok.jpg")
    jpeg = (d / "ok.jpg").read_bytes()
    paths = {"ok": d / "ok.jpg", "missing": d / "missing.jpg", "directory": d / "folder.jpg",
             "text": d / "notes.jpg", "truncated": d / "truncated.jpg", "empty": d / "empty.png"}
    paths["directory"].mkdir()
    paths["text"].write_text("this is not an image\n")
    paths["truncated"].write_bytes(jpeg[: len(jpeg) // 2])
    paths["empty"].write_bytes(b"")
    # above Pillow's decompression-bomb limit: warning zone (1-2x) and error zone (> 2x)
    paths["bomb"] = _blank_png(d / "bomb.png", 10_000, 10_000)
    paths["huge"] = _huge_png(d / "huge.png", 60_000, 60_000)
    # valid, if unusual
    Image.fromarray(rng.integers(0, 65536, (30, 50), dtype=np.uint16)).save(d / "16bit.png")
    rgba = rng.integers(0, 256, (33, 44, 4), dtype=np.uint8)
    rgba[:, :22, 3] = 0  # half transparent
    Image.fromarray(rgba, "RGBA").save(d / "rgba.png")
    Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.jpg")
    frames = [Image.fromarray(rng.integers(0, 256, (25, 35, 3), dtype=np.uint8))
              for _ in range(3)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    Image.new("RGB", (1, 1), (200, 10, 10)).save(d / "one.png")
    paths.update({"16bit": d / "16bit.png", "rgba": d / "rgba.png", "cmyk": d / "cmyk.jpg",
                  "anim": d / "anim.gif", "one": d / "one.png"})
    assert Image.open(paths["16bit"]).mode.startswith("I;16")
    assert Image.open(paths["cmyk"]).mode == "CMYK"
    assert Image.open(paths["anim"]).n_frames == 3
    return paths


BAD_IMAGES = [
    ("missing", "image not found"),
    ("directory", "not a file"),
    ("text", "cannot read image"),
    ("truncated", "truncated"),
    ("empty", "cannot read image"),
    ("bomb", "decompression-bomb limit"),
    ("huge", "decompression-bomb limit"),
]


@pytest.mark.parametrize("kind,message", BAD_IMAGES, ids=[k for k, _ in BAD_IMAGES])
def test_bad_image_is_named(trained_run: Path, images: dict[str, Path], tmp_path: Path,
                            kind: str, message: str) -> None:
    result = sera("predict", images[kind], "the red circle", "--checkpoint", trained_run,
                  "--out", tmp_path / "mask.png")
    fails(result, str(images[kind]), message)
    assert not (tmp_path / "mask.png").exists()


def test_image_past_the_bomb_limit_is_refused_before_decoding(images: dict[str, Path]) -> None:
    """Refused from the header: a fresh process's peak memory stays where it was (decoding the
    first, a genuine image, takes 100 MB; the second's header claims 3.6 GB)."""
    probe = (
        "import resource, sys\n"
        "from sera_cli.data.images import load_image\n"
        "from sera_cli.errors import SeraError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        load_image(path)\n"
        "    except SeraError as exc:\n"
        "        print(exc)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(images["bomb"]),
                             str(images["huge"])], capture_output=True, text=True, timeout=120)
    *errors, grown_mib = result.stdout.splitlines()
    assert result.returncode == 0 and len(errors) == 2, result.stderr
    assert all("decompression-bomb limit" in e and "downscale" in e for e in errors)
    assert int(grown_mib) < 20


VALID_IMAGES = [("16bit", (50, 30)), ("rgba", (44, 33)), ("cmyk", (60, 40)), ("anim", (35, 25)),
                ("one", (1, 1))]


@pytest.mark.parametrize("kind,size", VALID_IMAGES, ids=[k for k, _ in VALID_IMAGES])
def test_unusual_valid_image_gives_a_mask_of_its_size(trained_run: Path,
                                                      images: dict[str, Path], tmp_path: Path,
                                                      kind: str, size: tuple[int, int]) -> None:
    out, over = tmp_path / "mask.png", tmp_path / "overlay.png"
    result = sera("predict", images[kind], "the red circle", "--checkpoint", trained_run,
                  "--out", out, "--overlay", over, "--json")
    assert result.exit_code == 0, result.output
    assert (json.loads(result.stdout)["width"], json.loads(result.stdout)["height"]) == size
    assert Image.open(out).size == size and Image.open(over).size == size


# -------------------------------------------------------------------------------- expressions


@pytest.mark.parametrize("text", ["", "   \t  ", "\x00\x07\x1b"])
def test_empty_expression_is_refused(trained_run: Path, images: dict[str, Path],
                                     tmp_path: Path, text: str) -> None:
    result = sera("predict", images["ok"], text, "--checkpoint", trained_run,
                  "--out", tmp_path / "m.png")
    fails(result, "empty referring expression", repr(text))


def test_long_expression_is_cut_with_a_warning(trained_run: Path, images: dict[str, Path],
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokenize_module, "_warned_cut", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = sera("predict", images["ok"], "the tall giraffe " * 30, "--checkpoint",
                      trained_run, "--out", tmp_path / "m.png")
    assert result.exit_code == 0, result.output
    # recorded here, or shown by the CLI itself as a `warning:` line
    shown = [str(w.message) for w in caught] + result.stderr.splitlines()
    assert any("cut to the context length 17 (90 tokens, 15 kept)" in s for s in shown), shown
    assert Image.open(tmp_path / "m.png").size == (60, 40)


@pytest.mark.parametrize("text", ["der Bär links, größer", "左边的猫", "the 🦒 next to 🚗",
                                  "red\x00one\x1b[31m\nleft\tmost\x07",
                                  "&lt;end_of_text&gt; left <|endoftext|> one"])
def test_unusual_expression_is_tokenized(trained_run: Path, images: dict[str, Path],
                                         tmp_path: Path, text: str) -> None:
    result = sera("predict", images["ok"], text, "--checkpoint", trained_run,
                  "--out", tmp_path / "m.png", "--overlay", tmp_path / "o.png")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1  # a newline in the expression is not echoed raw
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", result.stdout)
    assert Image.open(tmp_path / "m.png").size == (60, 40)


# -------------------------------------------------------------------------------- checkpoints


def _broken_run(trained_run: Path, tmp_path: Path, damage: str) -> Path:
    run = tmp_path / f"run-{damage}"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("checkpoints"))
    weights, config_path = run / "model.safetensors", run / "config.json"
    config = json.loads(config_path.read_text())
    if damage == "missing weights":
        weights.unlink()
    elif damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "config not json":
        config_path.write_text("{'model': sera-tiny,")
    elif damage == "newer format":
        config["format_version"] = 99
    elif damage == "malformed model section":
        config["model"]["fusion_dim"] = "wide"
    elif damage == "wrong shape":
        from safetensors.torch import load_file, save_file

        state = load_file(weights)
        state["fusion.experts.0.project.weight"] = state["fusion.experts.0.project.weight"][:1]
        save_file(state, weights)
    elif damage in ("expert not installed", "router not installed"):
        key, name = (("experts", "warp"), ("router", "hash"))[
            damage == "router not installed"]
        if key == "experts":
            config["model"][key][0] = name
            config["plugins"][f"fusion expert {name}"] = {
                "plugin": "warp", "distribution": "sera-warp-experts", "version": "0.3"}
        else:
            config["model"][key] = name
            config["plugins"][f"router {name}"] = {
                "plugin": "hashrouter", "distribution": "sera-hash-router", "version": "1.0"}
    if damage in ("newer format", "malformed model section", "expert not installed",
                  "router not installed"):
        config_path.write_text(json.dumps(config))
    return run


BAD_RUNS = [
    ("missing weights", ["model.safetensors", "is missing"]),
    ("truncated weights", ["model.safetensors", "truncated"]),
    ("config not json", ["config.json", "not valid JSON"]),
    ("newer format", ["config.json", "format version 99", "upgrade sera"]),
    ("malformed model section", ["config.json", "'model.fusion_dim' must be a whole number"]),
    ("wrong shape", ["fusion.experts.0.project.weight", "has shape (1, "]),
    ("expert not installed", ["fusion expert 'warp'", "pip install sera-warp-experts"]),
    ("router not installed", ["router 'hash'", "pip install sera-hash-router"]),
]


@pytest.mark.parametrize("damage,culprits", BAD_RUNS, ids=[d for d, _ in BAD_RUNS])
def test_broken_checkpoint_is_named(trained_run: Path, images: dict[str, Path], tmp_path: Path,
                                    damage: str, culprits: list[str]) -> None:
    run = _broken_run(trained_run, tmp_path, damage)
    result = sera("predict", images["ok"], "red one", "--checkpoint", run,
                  "--out", tmp_path / "m.png")
    fails(result, str(run), *culprits)
    if damage == "truncated weights":  # eval goes through the same loader
        fails(sera("eval", "--checkpoint", run), str(run), *culprits)


def test_missing_run_folder_is_named(tmp_path: Path, images: dict[str, Path]) -> None:
    fails(sera("predict", images["ok"], "red one", "--checkpoint", tmp_path / "no-run"),
          str(tmp_path / "no-run"), "does not exist")
    fails(sera("eval", "--checkpoint", tmp_path / "no-run"), str(tmp_path / "no-run"))
    fails(sera("train", "--resume", tmp_path / "no-run"), str(tmp_path / "no-run"))


# ------------------------------------------------------------------------------------- data


def _broken_data(root: Path, tmp_path: Path, damage: str) -> Path:
    data = tmp_path / "data"
    shutil.copytree(root, data)
    folder = data / "synth"
    instances = json.loads((folder / "instances.json").read_text())
    image_dir = data / "images/mscoco/images/train2014"
    if damage == "missing instances.json":
        (folder / "instances.json").unlink()
    elif damage == "missing refs file":
        (folder / "refs(unc).p").unlink()
    elif damage == "refs not a pickle":
        (folder / "refs(unc).p").write_text("ref_id,sentence\n1,the red circle\n")
    elif damage == "missing images":
        for path in sorted(image_dir.iterdir())[:3]:
            path.unlink()
    elif damage == "missing annotations":
        instances["annotations"] = instances["annotations"][2:]
    elif damage == "file name escapes":
        instances["images"][0]["file_name"] = "../../../../../../etc/passwd"
    if damage in ("missing annotations", "file name escapes"):
        (folder / "instances.json").write_text(json.dumps(instances))
    return data


BAD_DATA = [
    ("missing instances.json", ["instances.json"]),
    ("missing refs file", ["refs(unc).p", "missing"]),
    ("refs not a pickle", ["refs(unc).p", "not a valid refs pickle"]),
    ("missing images", ["bad entries", "missing image file", "--skip-bad"]),
    ("missing annotations", ["bad entries", "missing annotation", "--skip-bad"]),
    ("file name escapes", ["bad entries", "unsafe file name"]),
]


@pytest.mark.parametrize("damage,culprits", BAD_DATA, ids=[d for d, _ in BAD_DATA])
def test_broken_data_is_named_by_eval_train_and_check(trained_run: Path, synth_data_root: Path,
                                                      tmp_path: Path, damage: str,
                                                      culprits: list[str]) -> None:
    data = _broken_data(synth_data_root, tmp_path, damage)
    where = str(data / "synth")
    fails(sera("eval", "--checkpoint", trained_run, "--data", data), where, *culprits)
    fails(sera("train", "--data", data, "--max-steps", "1", "--batch-size", "4",
               "--out", tmp_path / "run"), where, *culprits)
    assert not (tmp_path / "run" / "checkpoints").exists()
    check = sera("data", "check", data, "--dataset", "synth")
    if "bad entries" in culprits:  # a report, then exit 1
        assert check.exit_code == 1 and "Traceback" not in check.output
        assert culprits[1] in check.stdout
    else:
        fails(check, where, *culprits)


def test_bad_entries_can_be_skipped(trained_run: Path, synth_data_root: Path,
                                    tmp_path: Path) -> None:
    data = _broken_data(synth_data_root, tmp_path, "missing images")
    result = sera("eval", "--checkpoint", trained_run, "--data", data, "--skip-bad", "--split",
                  "val", "--json")
    assert result.exit_code == 0, result.output
    assert all(r["n"] > 0 for r in json.loads(result.stdout)["results"])
    assert re.search(r"synth: left out \d+ bad refs \(--skip-bad\)", result.stderr)


def test_refs_pickle_that_runs_code_is_refused(trained_run: Path, synth_data_root: Path,
                                               tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    data = _broken_data(synth_data_root, tmp_path, "none")
    refs = data / "synth" / "refs(unc).p"
    refs.write_bytes(pickle.dumps([{"ref_id": 1, "split": "train", "sentences": [Exploit()]}]))
    for result in (sera("eval", "--checkpoint", trained_run, "--data", data),
                   sera("data", "check", data, "--dataset", "synth")):
        fails(result, str(refs), "refused", "nothing in it was run", "system")
    assert not marker.exists()


def test_unsafe_split_name_is_a_bad_entry(synth_data_root: Path, tmp_path: Path) -> None:
    from sera_cli.data.safe_pickle import load_refs

    data = _broken_data(synth_data_root, tmp_path, "none")
    refs_path = data / "synth" / "refs(unc).p"
    refs = load_refs(refs_path)
    refs[0]["split"] = "../../outside"  # --save-masks writes DIR/{split}/
    refs_path.write_bytes(pickle.dumps(refs, protocol=2))
    check = sera("data", "check", data, "--dataset", "synth", "--json")
    assert check.exit_code == 1
    assert json.loads(check.stdout)["splits"]["../../outside"]["problems"] == {
        "unsafe split name": 1}


def test_unknown_split_and_dataset_list_the_known(trained_run: Path, synth_data_root: Path,
                                                  tmp_path: Path) -> None:
    fails(sera("eval", "--checkpoint", trained_run, "--split", "val,tset"),
          "unknown split 'tset'", "known splits: train, val, testA, testB")
    fails(sera("eval", "--checkpoint", trained_run, "--split", " , "), "--split", "names no split")
    fails(sera("eval", "--checkpoint", trained_run, "--dataset", "refcocoo"),
          "'refcocoo'", "known datasets: refcoco, refcoco+, refcocog, synth")
    config = tmp_path / "c.toml"
    config.write_text(f'data = "{synth_data_root}"\nval-split = "valid"\nmax-steps = 1\n')
    fails(sera("train", "--config", config, "--out", tmp_path / "run"),
          "unknown split 'valid'", "known splits:")


# ------------------------------------------------------------------------------------- options


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


def test_bad_predict_and_eval_options(trained_run: Path, images: dict[str, Path],
                                      tmp_path: Path) -> None:
    ok = images["ok"]
    fails(sera("predict", ok, "red", "--checkpoint", trained_run, "--threshold", "2"),
          "--threshold must be between 0 and 1")
    fails(sera("eval", "--checkpoint", trained_run, "--threshold", "-0.1"), "--threshold")
    fails(sera("predict", ok, "red", "--checkpoint", trained_run, "--device", "tpu"),
          "--device 'tpu'")
    fails(sera("eval", "--checkpoint", trained_run, "--device", "gpu"), "--device 'gpu'")
    usage_error(sera("eval", "--checkpoint", trained_run, "--batch-size", "0"), "--batch-size")
    usage_error(sera("eval", "--checkpoint", trained_run, "--workers", "-1"), "--workers")
    usage_error(sera("train", "--top-k", "2"), "--top-k")
    fails(sera("predict", ok), "give IMAGE and EXPRESSION")
    a_file = tmp_path / "file"
    a_file.write_text("")
    fails(sera("predict", ok, "red", "--checkpoint", trained_run, "--out", tmp_path),
          "--out", "is a folder")
    fails(sera("predict", ok, "red", "--checkpoint", trained_run, "--out", tmp_path / "m.xyz"),
          "--out", "extension '.xyz'")
    fails(sera("predict", ok, "red", "--checkpoint", trained_run, "--out",
               a_file / "m.png"), "--out", str(a_file))
    fails(sera("predict", ok, "red", "--checkpoint", trained_run, "--overlay",
               a_file / "o.png"), "--overlay", str(a_file))
    batch = tmp_path / "batch.tsv"
    batch.write_text(f"{ok}\tred one\n")
    fails(sera("predict", "--batch", batch, "--checkpoint", trained_run, "--out-dir", a_file),
          "--out-dir", str(a_file))
    batch.write_text(f"{ok} red one\n")
    fails(sera("predict", "--batch", batch, "--checkpoint", trained_run),
          str(batch), "line 1", "IMAGE<TAB>EXPRESSION")
    fails(sera("eval", "--checkpoint", trained_run, "--save-masks", a_file / "masks"),
          "--save-masks", str(a_file))
    fails(sera("data", "synth", "--out", a_file / "data", "--images", "4"), str(a_file))


# ----------------------------------------------------------------------------- run folders


def test_unwritable_run_folder_is_reported_before_training(synth_data_root: Path,
                                                           tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    fails(sera("train", "--data", synth_data_root, "--max-steps", "1", "--batch-size", "4",
               "--out", a_file / "run"), "cannot write to the run folder", str(a_file))


def test_resume_without_checkpoint_is_named(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    fails(sera("train", "--resume", tmp_path / "run"), str(tmp_path / "run"))


# ---------------------------------------------------------------------------------- plugins


_HOOK_RAISES = '''
from sera_cli.hookspecs import hookimpl

@hookimpl
def sera_register_experts(register):
    raise RuntimeError("plugin bug")
'''

_FORWARD_RAISES = '''
from torch import nn
from sera_cli.hookspecs import ExpertSpec, hookimpl

class Explode(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        raise RuntimeError("kaboom")

@hookimpl
def sera_register_experts(register):
    register(ExpertSpec("explode", "fusion", Explode, "raises in forward"))
'''


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "bad_hook_plugin.py").write_text(_HOOK_RAISES)
    (folder / "bad_forward_plugin.py").write_text(_FORWARD_RAISES)
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_plugin_whose_hook_raises_is_named(plugin_dir: Path, synth_data_root: Path,
                                           tmp_path: Path) -> None:
    listing = sera("-p", "bad_hook_plugin", "experts", "list")
    assert listing.exit_code == 0 and "bad_hook_plugin" in listing.stdout
    assert "plugin bug" in listing.stdout
    fails(sera("-p", "bad_hook_plugin", "train", "--data", synth_data_root, "--max-steps", "1",
               "--batch-size", "4", "--experts", "mystery", "--out", tmp_path / "run"),
          "unknown fusion expert 'mystery'", "plugins that failed to load: bad_hook_plugin")


def test_expert_whose_forward_raises_is_named(plugin_dir: Path, synth_data_root: Path,
                                              tmp_path: Path) -> None:
    fails(sera("-p", "bad_forward_plugin", "train", "--data", synth_data_root, "--max-steps",
               "1", "--batch-size", "4", "--experts", "explode,shape", "--topk", "2",
               "--out", tmp_path / "run"),
          "fusion expert 'explode'", "bad_forward_plugin", "kaboom")


# ---------------------------------------------------------------------------- --debug, hostile


def test_debug_keeps_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "no-run"
    for args, env in ((["--debug"], ""), ([], "1")):
        monkeypatch.setenv(ENV_DEBUG, env)
        result = sera(*args, "eval", "--checkpoint", missing)
        assert result.exit_code == 1 and isinstance(result.exception, SeraError)
        assert str(missing) in str(result.exception)


def test_worker_errors_keep_their_one_line(trained_run: Path, synth_data_root: Path,
                                           tmp_path: Path) -> None:
    """A bad image met inside a DataLoader worker is reported like one met in the main process
    (torch re-raises it with the worker's traceback pasted into the message)."""
    data = _broken_data(synth_data_root, tmp_path, "none")
    for path in (data / "images/mscoco/images/train2014").iterdir():
        path.write_bytes(path.read_bytes()[:200])
    result = sera("eval", "--checkpoint", trained_run, "--data", data, "--split", "val",
                  "--workers", "1")
    fails(result, "cannot read image", str(data))


_UNSAFE_LOADS = re.compile(
    r"\bpickle\.loads?\(|\bcPickle\b|\bdill\b|\bjoblib\.load\(|\bshelve\.|\bmarshal\.loads?\(|"
    r"\byaml\.(?:unsafe_)?load\(|\bUnpickler\(|allow_pickle\s*=\s*True|"
    r"\btorch\.load\((?![^)]*weights_only\s*=\s*True)"
)


def test_no_code_path_unpickles_except_the_refs_reader() -> None:
    allowed = {REPO / "sera_cli" / "data" / "safe_pickle.py"}
    found = []
    for folder in ("sera_cli", "plugins"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if _UNSAFE_LOADS.search(line) and path not in allowed:
                    found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
    reader = (REPO / "sera_cli/data/safe_pickle.py").read_text()
    assert "def find_class" in reader and "pickle.load(" not in reader
