"""``sera predict``: masks (and overlays) for images and expressions, one model load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from sera_cli.cli import options

O = typer.Option  # noqa: E741


def _read_batch(path: Path) -> list[tuple[Path, str]]:
    """Lines of `IMAGE<TAB>EXPRESSION`; blank lines and lines starting with # are skipped."""
    from sera_cli.errors import SeraError

    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SeraError(f"cannot read --batch {path}: {exc}") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        image, sep, expression = line.partition("\t")
        if not sep:
            raise SeraError(f"--batch {path} line {number}: expected IMAGE<TAB>EXPRESSION")
        pairs.append((Path(image.strip()), expression))
    return pairs


def _output_file(path: Path, option: str) -> Path:
    """Check an image file to be written, before the model is loaded: a writable folder (made if
    missing) and a file name whose extension Pillow can write."""
    from PIL import Image

    from sera_cli.errors import SeraError

    if path.is_dir():
        raise SeraError(f"{option} {path} is a folder; give a file name such as "
                        f"{path / 'mask.png'}")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise SeraError(f"{option} {path}: cannot write images with extension "
                        f"'{path.suffix}'; use .png")
    _output_folder(path.parent, option)
    return path


def _output_folder(folder: Path, option: str) -> Path:
    from sera_cli.errors import SeraError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SeraError(f"{option}: cannot create the folder {folder}: "
                        f"{exc.strerror or exc}") from None
    return folder


def _save(image: Any, path: Path) -> None:
    from sera_cli.errors import SeraError

    try:
        image.save(path)
    except (OSError, ValueError) as exc:
        raise SeraError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}"
                        ) from None


def predict(
    image: Annotated[Path | None, typer.Argument(help="Image file.")] = None,
    expression: Annotated[str | None, typer.Argument(help="Referring expression.")] = None,
    checkpoint: Annotated[Path | None, O(help="Run folder (default: the latest run).")] = None,
    out: Annotated[Path | None, O(help="Mask PNG (default: <image>.mask.png in the current "
                                       "folder).")] = None,
    overlay: Annotated[Path | None, O(help="Also write the image with the mask drawn on it.")
                       ] = None,
    batch: Annotated[Path | None, O(help="File of IMAGE<TAB>EXPRESSION lines.")] = None,
    out_dir: Annotated[Path, O(help="With --batch: folder for masks and overlays.")
                       ] = Path("predictions"),
    threshold: Annotated[float | None, O(help="Mask probability threshold (default: the "
                                              "run's).")] = None,
    device: Annotated[str, O(help="cpu or cuda.")] = "cpu",
    precision: options.Precision = "auto",
    as_json: Annotated[bool, O("--json", help="Print the no-target answer, area, box and "
                                              "routing as JSON.")] = False,
) -> None:
    """Segment the object (or objects) an expression names, or answer that it names none;
    writes the mask at the image's own size (empty for no target)."""
    from PIL import Image

    from sera_cli.data.tokenize import clean_expression
    from sera_cli.engine.inference import Predictor
    from sera_cli.engine.inference import overlay as draw_overlay
    from sera_cli.errors import SeraError
    from sera_cli.runs.folders import resolve_run

    if batch is not None and image is not None:
        raise SeraError("give either IMAGE EXPRESSION or --batch FILE, not both")
    if batch is not None:  # outputs are checked before the (slow) model load
        jobs = _read_batch(batch)
        _output_folder(out_dir, "--out-dir")
    elif image is not None and expression is not None:
        jobs = [(image, expression)]
        out = _output_file(out or Path(f"{image.stem}.mask.png"), "--out")
        if overlay is not None:
            _output_file(overlay, "--overlay")
    else:
        raise SeraError("give IMAGE and EXPRESSION, or --batch FILE")
    predictor = Predictor(resolve_run(checkpoint), device=device, threshold=threshold,
                          precision=precision)
    records = []
    for n, (img, text) in enumerate(jobs):
        prediction = predictor(img, text)
        if batch is not None:
            mask_path = out_dir / f"{n:04d}_{img.stem}.mask.png"
            over_path: Path | None = out_dir / f"{n:04d}_{img.stem}.overlay.png"
        else:
            mask_path, over_path = out, overlay  # type: ignore[assignment]
        _save(Image.fromarray(prediction.mask.astype("uint8") * 255), mask_path)
        if over_path is not None:
            _save(draw_overlay(img, prediction, text), over_path)
        records.append({"image": str(img), "expression": text, "mask": str(mask_path),
                        "overlay": str(over_path) if over_path else None,
                        **prediction.summary()})
    if as_json:
        typer.echo(json.dumps(records if batch is not None else records[0], indent=2))
        return
    for r in records:  # control characters in an expression must not garble the terminal
        answer = "no target" if r["no_target"] else f"{r['area']} px, box {r['box']}"
        if r["no_target_probability"] is not None:
            answer += f" (no-target probability {r['no_target_probability']:.2f})"
        typer.echo(f"{r['image']} \"{clean_expression(r['expression'])}\": {answer} "
                   f"-> {r['mask']}")
