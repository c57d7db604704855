"""`sera serve` as a visitor meets it: the real command on a tiny run, driven by headless
Chromium (Debian's `chromium` and `chromium-driver`, through Selenium), and by four concurrent
`gradio_client` clients. Marked slow and browser: `nox -s browser` runs it, and so does .ci/run.

`SERA_SCREENSHOT=docs/img/serve.png nox -s browser` also copies the page's screenshot there (the
one README.md shows); the test always saves it in its tmp folder.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import cli_env
from PIL import Image

from sera_cli.data.refer import ReferIndex

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = os.environ.get("SERA_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SERA_CHROMEDRIVER", "/usr/bin/chromedriver")
# Hang guards, not speed targets (bench/serve.py measures speed): 2 shared CPU cores are slow.
START_TIMEOUT = 300
ANSWER_TIMEOUT = 180
CLIENTS, REQUESTS_PER_CLIENT = 4, 5


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`sera serve` on the tiny run, on a free port of 127.0.0.1 only, stopped at the end."""
    folder = tmp_path_factory.mktemp("serve")
    port, log = free_port(), folder / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sera_cli", "serve", "--checkpoint", str(trained_run),
             "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
            stdout=out, stderr=subprocess.STDOUT, env=cli_env(GRADIO_TEMP_DIR=str(folder)))
    running = Server(f"http://127.0.0.1:{port}/", process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"sera serve exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"not serving yet:\n{log.read_text()}"
            try:
                urllib.request.urlopen(running.url, timeout=5).close()
                break
            except OSError:
                time.sleep(0.5)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def samples(synth_data_root: Path) -> list[tuple[Path, str]]:
    """(image, expression naming one of its objects) from the synthetic data, one per image."""
    index = ReferIndex.load(synth_data_root, "synth")
    chosen: dict[Path, str] = {}
    for sample in index.samples("val") + index.samples("testA"):
        chosen.setdefault(index.image_path(sample), sample.sentence)
    return list(chosen.items())


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1500"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The served page, by the elem_ids that sera_cli/cli/serve.py gives its parts."""

    def __init__(self, driver: Any, url: str) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.url = driver, url
        self.wait = WebDriverWait(driver, ANSWER_TIMEOUT)
        driver.get(url)
        self.find("#image input[type=file]")

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.wait.until(lambda d: d.find_element(By.CSS_SELECTOR, css))

    def upload(self, path: Path) -> None:
        self.find("#image input[type=file]").send_keys(str(path.resolve()))
        self.find("#image img")  # the preview (broken for a file that is no image)

    def ask(self, expression: str, enter: bool = True) -> None:
        """Type the expression (set at once when long: typing 5,000 keys takes a minute), then
        press Enter or click Segment."""
        from selenium.webdriver.common.keys import Keys

        box = self.find("#expression textarea")
        box.clear()
        if len(expression) > 100:
            self.driver.execute_script(
                "arguments[0].value = arguments[1];"
                "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
                box, expression)
        else:
            box.send_keys(expression)
        if enter:
            box.send_keys(Keys.ENTER)
        else:
            self.find("#segment").click()

    def message(self) -> str:
        return self.find("#message textarea").get_attribute("value")

    def answer(self, after: str | None = None) -> str:
        """The message once the server has answered: any message on a fresh page, or with
        ``after`` (the overlay's address before), a new overlay."""
        if after is None:
            self.wait.until(lambda _: self.message())
        else:
            self.wait.until(lambda _: self.overlay_src() not in (None, after))
        return self.message()

    def overlay_src(self) -> str | None:
        from selenium.webdriver.common.by import By

        found = self.driver.find_elements(By.CSS_SELECTOR, "#overlay img")
        return found[0].get_attribute("src") if found else None

    def image(self, css: str) -> Image.Image:
        with urllib.request.urlopen(self.find(css).get_attribute("src"), timeout=30) as r:
            return Image.open(BytesIO(r.read()))

    def routing_bars(self) -> list[dict[str, str]]:
        """The chart's bars as vega labels them: {"router": ..., "expert": ..., "weight": ...}."""
        from selenium.webdriver.common.by import By

        self.find("#routing svg")
        labels = [e.get_attribute("aria-label") or "" for e in
                  self.driver.find_elements(By.CSS_SELECTOR, "#routing svg .mark-rect path")]
        return [dict(part.split(": ", 1) for part in label.split("; ")) for label in labels]


def test_the_page_segments_an_uploaded_image(server: Server, browser: Any,
                                             samples: list[tuple[Path, str]],
                                             tmp_path: Path) -> None:
    image, expression = samples[0]
    page = Page(browser, server.url)
    page.upload(image)
    page.ask(expression, enter=False)
    message = page.answer()
    assert message.startswith("mask: "), message

    size = Image.open(image).size
    overlay, mask = page.image("#overlay img"), page.image("#mask img")
    assert overlay.size == size and mask.size == size
    pixels = np.asarray(mask.convert("L")) > 127
    area = int(re.match(r"mask: (\d+) px", message)[1])
    assert 0 < area == int(pixels.sum()), "an expression naming an object gives a mask"

    bars = page.routing_bars()
    weights: dict[str, float] = {}
    for bar in bars:
        weights[bar["router"]] = weights.get(bar["router"], 0.0) + float(bar["weight"])
    assert "fusion" in weights and any(r.startswith("adapter.") for r in weights), bars
    assert {b["expert"] for b in bars if b["router"] == "fusion"} == {
        "spatial", "context", "boundary", "shape"}
    assert all(abs(total - 1) < 0.02 for total in weights.values()), weights  # softmax gates

    browser.save_screenshot(str(tmp_path / "serve.png"))
    if os.environ.get("SERA_SCREENSHOT"):
        shutil.copyfile(tmp_path / "serve.png", os.environ["SERA_SCREENSHOT"])

    before = page.overlay_src()
    page.ask(samples[1][1] if samples[1][1] != expression else "the biggest thing")
    assert page.answer(after=before).startswith("mask: "), "Enter predicts again"


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    notes = folder / "notes.png"
    notes.write_text("not an image")
    huge = folder / "huge.png"
    Image.new("RGB", (10_000, 10_000), (90, 90, 90)).save(huge)  # 300 KB, 10^8 pixels
    return {"not an image": notes, "10000x10000": huge}


def test_bad_inputs_show_a_message_and_the_server_keeps_serving(
        server: Server, browser: Any, samples: list[tuple[Path, str]],
        bad_files: dict[str, Path]) -> None:
    good, expression = samples[0]
    cases = [("no image", None, expression, "no image"),
             ("not an image", bad_files["not an image"], expression,
              "cannot read image notes.png"),
             ("10000x10000", bad_files["10000x10000"], expression,
              "too large to decode safely"),
             ("empty expression", good, "", "empty referring expression"),
             ("5000 characters", good, "the red circle " * 333 + "ab",
              "at most 500 characters")]
    for name, image, text, words in cases:
        page = Page(browser, server.url)
        if image is not None:
            page.upload(image)
        page.ask(text, enter=name != "empty expression")
        message = page.answer()
        assert words in message, (name, message)
        assert page.overlay_src() is None and "Traceback" not in browser.page_source, name
        assert server.process.poll() is None, f"the server died on {name}"
    page = Page(browser, server.url)
    page.upload(good)
    page.ask(expression)
    assert page.answer().startswith("mask: "), "still serving after the bad inputs"


def test_concurrent_api_clients_all_get_answers_of_the_right_size(
        server: Server, samples: list[tuple[Path, str]], tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    def client_run(n: int) -> list[tuple[Path, Any]]:
        client = Client(server.url, verbose=False, download_files=tmp_path / f"client{n}")
        done = []
        for k in range(REQUESTS_PER_CLIENT):
            image, expression = samples[(n + k) % len(samples)]
            job = client.submit(handle_file(str(image)), expression, 0.35, api_name="/predict")
            done.append((image, job.result(timeout=ANSWER_TIMEOUT)))
        return done

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = [a for done in pool.map(client_run, range(CLIENTS)) for a in done]
    assert len(answers) == CLIENTS * REQUESTS_PER_CLIENT
    masks: dict[Path, bytes] = {}
    for image, (overlay, mask, summary, _chart, message) in answers:
        size = Image.open(image).size
        assert message.startswith("mask: "), message
        assert Image.open(overlay).size == Image.open(mask).size == size
        assert (summary["width"], summary["height"]) == size
        pixels = np.asarray(Image.open(mask)).tobytes()  # whole, and not another request's
        assert masks.setdefault(image, pixels) == pixels, f"two masks for {image.name}"


def test_the_server_stops_on_sigterm(server: Server) -> None:
    assert server.stop() == 0, server.log.read_text()
    assert "stopped" in server.log.read_text()
