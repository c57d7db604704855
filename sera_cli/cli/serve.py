"""``sera serve``: a web page (gradio) and its API for trying expressions on images.

This module only draws: every value the page shows comes from
`sera_cli.engine.serving.Segmenter.answer`. gradio is an optional extra (``pip install
'sera[serve]'``) and is imported inside functions, so that ``sera --help`` stays light.
"""

from __future__ import annotations

import functools
import logging
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sera_cli.cli import options

if TYPE_CHECKING:
    from sera_cli.engine.serving import Answer, Segmenter

O = typer.Option  # noqa: E741
#: Uploads above this are refused by gradio before they reach the model; images with more
#: pixels than Pillow's decompression-bomb limit are refused from their header below it.
MAX_UPLOAD = "50mb"
#: Requests only run one at a time (see docs/serve.md, "Concurrent use"), all events alike.
MODEL_QUEUE = "model"
#: How long an answer's PNGs stay in the server's own folder (gradio copies them at once).
ANSWER_AGE_S = 600.0
INSTALL_HINT = "pip install 'sera[serve]' (in a checkout: pip install -e '.[serve]')"
log = logging.getLogger(__name__)


def serve(
    checkpoint: options.Checkpoint = None,
    host: Annotated[str, O(help="Address to listen on; 0.0.0.0 opens the page (which has no "
                                "login) to the network.")] = "127.0.0.1",
    port: Annotated[int, O(min=1, max=65535, help="Port to listen on.")] = 7860,
    precision: options.Precision = "auto",
    device: options.Device = "auto",
    queue_size: Annotated[int, O(min=1, help="Requests that may wait for the model; more are "
                                             "turned away until the queue drains.")] = 16,
) -> None:
    """Serve a web page, and its API, that segments what an expression names in an image."""
    from sera_cli.cli.progress import err
    from sera_cli.errors import SeraError
    from sera_cli.runs.folders import resolve_run

    try:
        import gradio  # noqa: F401  (checked before the slow model load)
    except ImportError:
        raise SeraError(f"sera serve needs gradio: {INSTALL_HINT}") from None
    run = resolve_run(checkpoint)
    _check_port(host, port)
    from sera_cli.engine.serving import Segmenter, example_inputs

    err.print(f"loading {run} ...", markup=False, soft_wrap=True)
    segmenter = Segmenter(run, device=device, precision=precision)
    with tempfile.TemporaryDirectory(prefix="sera-serve-") as work:
        examples = example_inputs(Path(work) / "examples")
        app = build_app(segmenter, examples, queue_size, Path(work) / "answers")
        try:
            app.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
                       max_file_size=MAX_UPLOAD, allowed_paths=[work], ssr_mode=False,
                       theme=_theme())
        except OSError as exc:  # the port was taken between the check and now
            raise SeraError(f"cannot serve on {host}:{port}: {exc}; choose another --port"
                            ) from None
        err.print(f"serving {run} on http://{_url_host(host)}:{port} (Ctrl+C stops)",
                  markup=False, soft_wrap=True)  # one line, "[::1]" and all
        # SIGTERM (a service manager's, a test's) stops as Ctrl+C does: the server closes and
        # the examples and answers are removed
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while app.is_running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            err.print("stopped")
        finally:
            app.close()


def build_app(segmenter: Segmenter, examples: list[tuple[Path, str]], queue_size: int,
              answers: Path) -> Any:
    """The page: image, expression and threshold in; overlay, mask PNG, area and box, routing
    chart and a message out. Enter in the expression, the button and releasing the slider all
    predict; they share one queue, so the model runs one request at a time. ``answers`` is a
    folder for the PNGs of each answer."""
    import gradio as gr

    # uploads and answers pile up in gradio's cache: each hour, those older than an hour go
    with gr.Blocks(title="sera", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(f"## sera: referring image segmentation\nModel: `{segmenter.run.name}`. "
                    "Upload or paste an image, say which object you mean, press Enter.")
        with gr.Row():
            with gr.Column():
                image = gr.Image(label="image", sources=["upload", "clipboard"], type="filepath",
                                 elem_id="image")
                expression = gr.Textbox(label="expression", placeholder="the red circle",
                                        elem_id="expression")
                threshold = gr.Slider(0.01, 0.99, value=segmenter.default_threshold,
                                      step=0.01, label="threshold (mask probability)",
                                      elem_id="threshold")
                button = gr.Button("Segment", variant="primary", elem_id="segment")
            with gr.Column():
                overlay = gr.Image(label="overlay", format="png", interactive=False,
                                   elem_id="overlay")
                message = gr.Textbox(label="message", interactive=False, elem_id="message")
        with gr.Row():
            mask = gr.Image(label="mask (PNG)", format="png",
                            interactive=False, buttons=["download"], elem_id="mask")
            summary = gr.JSON(label="area, box and routing", elem_id="summary")
            routing = gr.BarPlot(x="router", y="weight", color="expert", y_lim=[0, 1],
                                 label="routing weights", elem_id="routing")
        gr.Examples([[str(path), text] for path, text in examples], [image, expression])

        event = {"fn": functools.partial(_predict, segmenter, answers),
                 "inputs": [image, expression, threshold],
                 "outputs": [overlay, mask, summary, routing, message],
                 # the raw upload goes to Predictor, which decodes it (and refuses it) as
                 # `sera predict` does; gradio's own decoding would bypass that
                 "preprocess": False, "concurrency_limit": 1, "concurrency_id": MODEL_QUEUE}
        button.click(api_name="predict", **event)
        expression.submit(api_visibility="private", **event)
        threshold.release(api_visibility="private", **event)
    app.queue(max_size=queue_size, default_concurrency_limit=1)
    return app


def _predict(segmenter: Segmenter, answers: Path, image: dict[str, Any] | None,
             expression: str | None, threshold: float | None) -> tuple[Any, ...]:
    """One request: ``image`` is gradio's record of the upload (its server-side ``path`` and the
    visitor's ``orig_name``). The API's parameters are named after this function's. A bug shows
    as a message and goes to the log, so that the page never shows a traceback and the server
    keeps serving."""
    from sera_cli.engine.serving import Answer

    upload = image or {}
    name = upload.get("orig_name") or "image"
    try:
        answer = segmenter.answer(upload.get("path"), expression, threshold, image_name=name)
        return _outputs(answer, answers, Path(name).stem[:100] or "image")
    except Exception as exc:  # a server answers every request
        log.exception("request failed")
        return _outputs(Answer(f"sera failed on this request ({type(exc).__name__}: {exc}); "
                               "the server's log has the details"), answers, "image")


def _outputs(answer: Answer, answers: Path, name: str) -> tuple[Any, ...]:
    """An answer as the page's outputs, in the order `build_app` lists them. The images go out
    as PNG files of this request's own, `<name>.overlay.png` and `<name>.mask.png` (the names
    `sera predict --batch` gives; a download keeps them): handed PIL images, gradio writes each
    to a file named by its content, in place, so that two equal answers at once truncated the
    file while it was being downloaded. Given files, it copies them atomically."""
    import pandas as pd  # a gradio dependency

    chart = pd.DataFrame(answer.routing, columns=["router", "expert", "weight"])
    if not answer.ok:
        return None, None, answer.summary, chart, answer.message
    _sweep(answers)
    answers.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=answers))
    overlay, mask = folder / f"{name}.overlay.png", folder / f"{name}.mask.png"
    answer.overlay.save(overlay)
    answer.mask.save(mask)
    return str(overlay), str(mask), answer.summary, chart, answer.message


def _sweep(answers: Path, age_s: float = ANSWER_AGE_S) -> None:
    """Remove answer folders older than ``age_s``: gradio has copied them long before."""
    if not answers.is_dir():
        return
    old = time.time() - age_s
    for folder in answers.iterdir():
        if folder.stat().st_mtime < old:
            shutil.rmtree(folder, ignore_errors=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _theme() -> Any:
    """gradio's default look with the system's fonts: the default theme fetches its fonts from
    the web, which a machine with no internet (or a careful user) does not reach."""
    import gradio as gr

    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"])


def _check_port(host: str, port: int) -> None:
    """Fail before the model load when the address cannot be listened on."""
    from sera_cli.errors import SeraError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise SeraError(f"--host {host}: not an address of this machine ({exc.strerror})"
                        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise SeraError(f"cannot serve on {host}:{port}: {exc.strerror or exc}; choose "
                            "another --port (or stop what uses it)") from None


def _url_host(host: str) -> str:
    """How a browser on this machine reaches ``host``."""
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
