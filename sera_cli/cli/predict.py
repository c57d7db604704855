"""``sera predict``: masks (and overlays) for images and expressions, one model load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

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
    as_json: Annotated[bool, O("--json", help="Print area, box and routing as JSON.")] = False,
) -> None:
    """Segment the object an expression names; writes the mask at the image's own size."""
    from PIL import Image

    from sera_cli.errors import SeraError
    from sera_cli.predict import Predictor
    from sera_cli.predict import overlay as draw_overlay
    from sera_cli.runs import resolve_run

    if batch is None and (image is None or expression is None):
        raise SeraError("give IMAGE and EXPRESSION, or --batch FILE")
    if batch is not None and image is not None:
        raise SeraError("give either IMAGE EXPRESSION or --batch FILE, not both")
    jobs = _read_batch(batch) if batch is not None else [(image, expression)]  # type: ignore[list-item]
    predictor = Predictor(resolve_run(checkpoint), device=device, threshold=threshold)
    records = []
    for n, (img, text) in enumerate(jobs):
        prediction = predictor(img, text)
        if batch is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            mask_path = out_dir / f"{n:04d}_{img.stem}.mask.png"
            over_path: Path | None = out_dir / f"{n:04d}_{img.stem}.overlay.png"
        else:
            mask_path = out or Path(f"{img.stem}.mask.png")
            over_path = overlay
        Image.fromarray(prediction.mask.astype("uint8") * 255).save(mask_path)
        if over_path is not None:
            draw_overlay(img, prediction, text).save(over_path)
        records.append({"image": str(img), "expression": text, "mask": str(mask_path),
                        "overlay": str(over_path) if over_path else None,
                        **prediction.summary()})
    if as_json:
        typer.echo(json.dumps(records if batch is not None else records[0], indent=2))
        return
    for r in records:
        typer.echo(f"{r['image']} \"{r['expression']}\": {r['area']} px, box {r['box']} "
                   f"-> {r['mask']}")
