"""What `sera serve` does for one request, without the web page: the page only draws this.

`Segmenter.answer` takes what a visitor sent (an image file, an expression, a threshold) and
returns everything the page shows: the overlay, the mask, its area and box, the routing weights,
and a one-line message. A bad input (no image, a file that is not an image, one above Pillow's
decompression-bomb limit, an empty or overlong expression, a threshold out of range) becomes a
message, never an exception, so the server keeps serving. The prediction is
`sera_cli.engine.inference.Predictor`'s, so the page shows what `sera predict` writes for the same
image, expression and threshold. Nothing here imports gradio: the fast tests exercise all of it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sera_cli.analysis.routing import router_order
from sera_cli.config import check_threshold
from sera_cli.engine.inference import Prediction, Predictor, overlay
from sera_cli.errors import SeraError

#: Longer expressions are refused: the text tower reads at most `context_length - 2` tokens
#: (15 for sera's presets, a few words), so a paragraph would be silently cut to its first words.
#: 500 characters is far above any RefCOCO expression and keeps tokenizing a request cheap.
MAX_EXPRESSION_CHARS = 500
#: How many example images the page offers (one per expression type of the synthetic data).
EXAMPLE_COUNT = 4


@dataclass
class Answer:
    """What the page shows for one request; ``mask`` is None when the input was refused."""

    message: str  # one line for people: the mask's area and box, or what was wrong
    overlay: Any = None  # PIL RGB image, the input's size: `sera predict --overlay`'s picture
    mask: Any = None  # PIL "L" image, 0/255, the input's size: the PNG `sera predict` writes
    summary: dict[str, Any] | None = None  # `sera predict --json`'s fields, and the threshold
    routing: list[dict[str, Any]] = field(default_factory=list)  # router, expert, weight rows

    @property
    def ok(self) -> bool:
        return self.mask is not None


class Segmenter:
    """A run loaded once for many requests, answering each as the page needs it."""

    def __init__(self, run: Path, device: str = "auto", precision: str = "auto") -> None:
        self.predictor = Predictor(run, device=device, precision=precision)
        self.run = Path(run)
        #: the run's own threshold: the page's default
        self.default_threshold = self.predictor.threshold
        self._lock = threading.Lock()

    def answer(self, image: str | Path | None, expression: str | None,
               threshold: float | None = None, image_name: str | None = None) -> Answer:
        """Segment what ``expression`` names in the image file ``image``; a problem with the
        input (SeraError) comes back as the answer's message. ``image_name`` (the visitor's file
        name) stands for the server-side path in messages, which would only confuse them."""
        try:
            return self._answer(image, expression or "", threshold)
        except SeraError as exc:
            message = str(exc)
            if image is not None and image_name:
                message = message.replace(str(image), image_name)
            return Answer(message)

    def _answer(self, image: str | Path | None, expression: str,
                threshold: float | None) -> Answer:
        if image is None:
            raise SeraError("no image: upload one, paste one, or pick an example")
        if len(expression) > MAX_EXPRESSION_CHARS:
            room = self.predictor.model.cfg.text.context_length - 2
            raise SeraError(f"the expression is {len(expression)} characters long; the model "
                            f"reads only its first {room} tokens (a few words): give at most "
                            f"{MAX_EXPRESSION_CHARS} characters")
        threshold = self.default_threshold if threshold is None else check_threshold(
            threshold, "threshold")
        with self._lock:  # one request at a time holds the model
            prediction = self.predictor(image, expression, threshold)
        return self._present(image, expression, threshold, prediction)

    def _present(self, image: str | Path, expression: str, threshold: float,
                 prediction: Prediction) -> Answer:
        from PIL import Image

        summary = {**prediction.summary(), "threshold": threshold}
        routing = [{"router": router, "expert": expert, "weight": weight}
                   for router in router_order(prediction.routing)
                   for expert, weight in prediction.routing[router].items()]
        width, height, area = summary["width"], summary["height"], summary["area"]
        if area:
            x0, y0, x1, y1 = summary["box"]
            message = (f"mask: {area} px ({100 * area / (width * height):.1f}% of the "
                       f"{width}x{height} image), box x {x0}-{x1}, y {y0}-{y1}")
        elif prediction.no_target_probability is not None and prediction.no_target:
            message = ("no target: the model says the expression names nothing in this image "
                       f"(no-target probability {prediction.no_target_probability:.2f})")
        else:
            message = (f"no pixel reaches the threshold {threshold:g}: lower it, or name the "
                       "object differently")
        return Answer(message, overlay(image, prediction, expression),
                      Image.fromarray(prediction.mask.astype("uint8") * 255), summary, routing)


def example_inputs(folder: Path, count: int = EXAMPLE_COUNT) -> list[tuple[Path, str]]:
    """Up to ``count`` (image, expression) pairs drawn by `sera_cli.data.synth` into ``folder``,
    each of another image and expression type: the page's examples, so that a visitor with no
    image at hand can try the model on the kind of scene sera-tiny was trained on."""
    from sera_cli.data.refer import ReferIndex
    from sera_cli.data.synth import synthesize

    synthesize(folder, n_images=2 * count, seed=0, weights={"testB": 1})
    index = ReferIndex.load(folder, "synth")
    chosen: dict[int, tuple[Path, str]] = {}  # image id -> example
    types: set[str | None] = set()
    for sample in index.samples("testB"):
        if sample.image_id not in chosen and sample.expr_type not in types:
            chosen[sample.image_id] = (index.image_path(sample), sample.sentence)
            types.add(sample.expr_type)
    return list(chosen.values())[:count]
