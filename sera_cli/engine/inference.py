"""Applying a trained run to images: one model load for any number of (image, expression)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from sera_cli.engine.loading import LoadedRun


@dataclass
class Prediction:
    mask: np.ndarray  # (H, W) bool at the original image size; empty when no_target
    probability: np.ndarray  # (H, W) float32 in [0, 1], the mask head's
    routing: dict[str, dict[str, float]]  # router -> expert -> gate weight
    #: The model says the expression names nothing in the image: its no-target head does, or,
    #: for a model without one, its mask is empty.
    no_target: bool = False
    no_target_probability: float | None = None  # the head's; None for a model without one

    def summary(self) -> dict[str, Any]:
        """No-target answer, area, box (x0, y0, x1, y1 inclusive, or None when empty) and
        routing, for --json."""
        ys, xs = np.nonzero(self.mask)
        box = None if xs.size == 0 else [int(xs.min()), int(ys.min()), int(xs.max()),
                                         int(ys.max())]
        return {"no_target": self.no_target, "no_target_probability": self.no_target_probability,
                "height": int(self.mask.shape[0]), "width": int(self.mask.shape[1]),
                "area": int(self.mask.sum()), "box": box, "routing": self.routing}


class Predictor:
    """A loaded run, ready to segment; ``threshold`` defaults to the run's own. ``run`` is a run
    folder, or a run already opened (``from_pretrained`` opens a folder or a hub repository)."""

    def __init__(self, run: Path | LoadedRun, device: str = "cpu", threshold: float | None = None,
                 vision_weights: str | None = None, text_weights: str | None = None,
                 precision: str = "auto") -> None:
        from sera_cli.engine.loading import LoadedRun, open_run

        self.loaded = run if isinstance(run, LoadedRun) else open_run(
            run, device, threshold, vision_weights, text_weights, precision)
        self.model, self.config = self.loaded.model, self.loaded.config
        self.device, self.threshold = self.loaded.device, self.loaded.threshold

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | Path, device: str = "cpu",
                        threshold: float | None = None, precision: str = "auto",
                        **kwargs: Any) -> Predictor:
        """A Predictor on ``SeraModel.from_pretrained(path_or_repo_id, **kwargs)``: a run
        folder, or a hub repository id fetched into the Hugging Face cache."""
        from sera_cli.engine.loading import open_pretrained

        return cls(open_pretrained(path_or_repo_id, device, threshold, precision, **kwargs))

    @torch.no_grad()
    def __call__(self, image_path: str | Path, expression: str,
                 threshold: float | None = None) -> Prediction:
        """The mask of what ``expression`` names; ``threshold`` None is the predictor's own."""
        from sera_cli.analysis.metrics import decide
        from sera_cli.analysis.routing import expert_names
        from sera_cli.data.images import load_image
        from sera_cli.data.tokenize import tokenize
        from sera_cli.data.transforms import letterbox_image, normalize, unletterbox
        from sera_cli.engine.devices import dtype_of

        cfg = self.model.cfg
        image = load_image(image_path)
        pixels, lb = letterbox_image(image, cfg.image_size, fill=cfg.mean)
        tensor = normalize(torch.from_numpy(pixels).permute(2, 0, 1), cfg.mean, cfg.std)
        ids = tokenize([expression], cfg.text.context_length)
        out = self.model(tensor[None].to(self.device, dtype_of(self.model)), ids.to(self.device))
        prob = unletterbox(torch.sigmoid(out.logits.float())[0, 0].cpu(), lb).numpy()
        no_target = (None if out.no_target is None
                     else float(torch.sigmoid(out.no_target[0].float())))
        mask, said = decide(prob >= (self.threshold if threshold is None else threshold),
                            no_target)
        routing = {
            name: {expert: float(g) for expert, g in zip(expert_names(self.model, name),
                                                         r.gates[0].tolist(), strict=True)}
            for name, r in out.routings.items()
        }
        return Prediction(mask, prob.astype(np.float32), routing, said, no_target)


def overlay(image_path: str | Path, prediction: Prediction, expression: str) -> Any:
    """The image with the mask tinted, its outline drawn and the expression written on it."""
    from PIL import Image, ImageDraw, ImageFilter

    from sera_cli.data.images import load_image

    image = load_image(image_path).convert("RGB")
    mask = Image.fromarray(prediction.mask.astype(np.uint8) * 255)
    tint = Image.new("RGB", image.size, (255, 40, 120))
    blended = Image.composite(Image.blend(image, tint, 0.5), image, mask)
    edge = mask.filter(ImageFilter.FIND_EDGES).filter(ImageFilter.MaxFilter(3))
    blended.paste((255, 255, 0), mask=edge)
    draw = ImageDraw.Draw(blended)
    text_box = draw.textbbox((4, 4), expression)
    draw.rectangle((text_box[0] - 2, text_box[1] - 2, text_box[2] + 2, text_box[3] + 2),
                   fill=(0, 0, 0))
    draw.text((4, 4), expression, fill=(255, 255, 255))
    return blended
