"""``ovseg demo`` in a real browser: headless Chromium (selenium) drives the page the server serves.

The server runs as a user starts it (``python -m pipeline.demo.app --port N`` in a project folder) on a
free local port, on the tiny random-weight project of ``conftest.py`` (or, with ``OVSEG_DEMO_ROOT=DIR``,
on a real project folder holding ``artifacts/`` and ``data/``), and is stopped at the end.

"The input's size": the picture of each variant is ``ovseg predict``'s, the segmented image (here the
upload itself, below ``--max-side``) with the legend (``LEGEND_WIDTH`` = 220 px) to its right, so it is
``(W + 220) × max(H, legend height)``; its left ``W × H`` pixels are the segmentation. The upload is a
demo benchmark image scaled to 256×192 (``OVSEG_DEMO_PHOTO=512x512`` for another size), segmented among the
classes of its ground truth; the test prints each variant's time from the click to the answer (``-s``).

``OVSEG_SCREENSHOT=docs/demo.png`` also saves a screenshot of the page after the run with every variant.
Skipped when Chromium, its driver, selenium or gradio are missing, unless ``OVSEG_REQUIRE_BROWSER=1``
(``.ci/run`` installs them and sets it), where that is a failure.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import paths
from pipeline.datasets.manifest import load_world
from pipeline.demo.examples import Examples
from pipeline.evaluation.label_overlay import LEGEND_WIDTH, ROW_HEIGHT, class_colour, legend_height

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None
)
DRIVER = shutil.which("chromedriver")
TIMEOUT = 180
#: The upload's width and height; OVSEG_DEMO_PHOTO=512x512 times the variants on a larger one.
PHOTO = tuple(int(side) for side in os.environ.get("OVSEG_DEMO_PHOTO", "256x192").split("x"))


def missing_browser() -> str | None:
    """Why the browser test cannot run here, or ``None``."""
    missing = [what for what, found in (("chromium", CHROMIUM), ("chromedriver", DRIVER)) if not found]
    for module in ("selenium", "gradio"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"the Python package {module}")
    if not missing:
        return None
    return (
        f"{' and '.join(missing)} not found: apt-get install chromium chromium-driver; "
        "pip install -e '.[test]' (.ci/run does both)"
    )


@pytest.fixture(scope="module")
def project(request) -> Path:
    if reason := missing_browser():
        if os.environ.get("OVSEG_REQUIRE_BROWSER") == "1":
            pytest.fail(f"OVSEG_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    real = os.environ.get("OVSEG_DEMO_ROOT")
    return Path(real).resolve() if real else request.getfixturevalue("demo_root")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(project, tmp_path_factory):
    """The demo's URL, served from ``project`` by a separate process; stopped (its process, by id) afterwards."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False", "OVSEG_PROGRESS": "0"}
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.demo.app", "--port", str(port), "--threads", "2"],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"the demo server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the demo server did not answer within {TIMEOUT} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]


@pytest.fixture(scope="module")
def browser(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1600,1300",
        "--lang=en-GB",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get(server)
        wait(driver, lambda d: css(d, "#run") and d.title == "ovseg demo", "the page")
        yield driver
    finally:
        driver.quit()


# ----------------------------------------------------------------------------- page helpers
def wait(driver, condition, what: str, timeout: float = TIMEOUT):
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def check(d):
        try:
            return condition(d)
        except (StaleElementReferenceException, WebDriverException):
            return False

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(check, message=f"waiting for {what}")


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def status(driver, element: str = "status") -> tuple[str, str]:
    """``(ok|error, text)`` of a status line."""
    found = css(driver, f"#{element}")
    return (found[0].get_attribute("data-status") or "", found[0].text) if found else ("", "")


def answered(driver) -> str:
    """The number of the segment tab's last answer (``data-answer``)."""
    found = css(driver, "#status")
    return (found[0].get_attribute("data-answer") or "") if found else ""


def open_tab(driver, name: str) -> None:
    wait(driver, lambda d: css(d, f"#tab-{name}-button"), f"the {name} tab")
    css(driver, f"#tab-{name}-button")[0].click()


def upload(driver, path: Path) -> tuple[str, str]:
    """Upload ``path`` (after clearing the previous upload); the status it gets."""
    before = answered(driver)
    for clear in css(driver, '#upload button[aria-label="Clear"]'):
        clear.click()
    wait(driver, lambda d: css(d, "#upload input[type=file]"), "the upload field")
    css(driver, "#upload input[type=file]")[0].send_keys(str(path))
    return wait(driver, lambda d: answered(d) != before and status(d), f"the upload of {path.name}")


def segment(driver, classes: str, variants: list[str]) -> tuple[tuple[str, str], float]:
    """Type ``classes``, tick exactly ``variants``, press Segment; ``((status kind, text), seconds)``."""
    from selenium.webdriver.common.keys import Keys

    box = css(driver, "#classes textarea")[0]
    box.send_keys(Keys.CONTROL, "a")  # typed, not clear(): the page hears keys, not a script setting the value
    box.send_keys(Keys.DELETE)
    if len(classes) > 200:  # a long list is pasted: the value set, then the input event the page listens to
        driver.execute_script(
            "arguments[0].value = arguments[1];arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
            box,
            classes,
        )
    elif classes:
        box.send_keys(classes)
    for label in css(driver, "#variants label"):
        ticked = label.find_element("css selector", "input").is_selected()
        if ticked != (label.text.strip() in variants):
            label.click()
    before = answered(driver)
    start = time.perf_counter()
    css(driver, "#run")[0].click()
    answer = wait(driver, lambda d: answered(d) != before and status(d), "the answer")
    return answer, time.perf_counter() - start


def picture(driver, variant: str) -> Image.Image:
    """The picture the page shows for ``variant``, as the browser loaded it (its natural size checked)."""
    selector = f"#out-{variant.replace('_', '-')} img"
    image = wait(driver, lambda d: css(d, selector) and css(d, selector)[0], f"{variant}'s picture")
    wait(
        driver,
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image),
        f"{variant}'s picture to load",
    )
    natural = driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", image)
    with urllib.request.urlopen(image.get_attribute("src"), timeout=30) as response:
        loaded = Image.open(io.BytesIO(response.read()))
        loaded.load()
    assert list(loaded.size) == natural
    return loaded.convert("RGB")


# ----------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def photo(project, tmp_path_factory) -> tuple[Path, str]:
    """A PNG of :data:`PHOTO` (a demo benchmark image of the project, scaled: not square, not the models' size)
    and the class list of its ground truth (the first image with at least 3 classes)."""
    world = load_world(project / paths.WORLD_MANIFEST)
    examples = Examples(world.benchmark("demo"))
    pixels, classes = next(example for example in map(examples.load, examples.keys()) if example[1].count(",") >= 2)
    path = tmp_path_factory.mktemp("uploads") / "photo.png"
    Image.fromarray(pixels).resize(PHOTO, Image.BICUBIC).save(path)
    return path, classes


def test_an_upload_is_segmented_by_each_variant_at_its_size_with_the_legend(browser, photo):
    path, classes = photo
    width, height = PHOTO
    names = [name.split("|")[0] for name in classes.split(", ")]
    kind, text = upload(browser, path)
    assert (kind, text) == ("ok", f"uploaded photo.png, {width}×{height}")
    variants = [label.text.strip() for label in css(browser, "#variants label")]
    assert variants == ["base", "ft_mpt", "adapter_ens", "maskpool"]
    print(f"\nclick to answer, one variant, {width}×{height}, {len(names)} classes:")
    for index, name in enumerate(variants):  # a new synonym (embedded on the first click), then the same list
        for attempt in ("new class list", "same list"):
            (kind, text), seconds = segment(browser, f"{classes}|word{index}", [name])
            assert kind == "ok" and text.startswith(
                f"segmented photo.png, {width}×{height} among {len(names)} classes: {name} "
            ), text
            print(f"  {name}, {attempt}: {seconds:.2f} s (server {text.split()[-2]} s)")
    (kind, text), seconds = segment(browser, classes, variants)
    assert kind == "ok" and all(f"{name} " in text for name in variants), text
    print(f"click to answer, all four variants: {seconds:.2f} s ({text})")
    for name in variants:
        shown = picture(browser, name)
        assert shown.size == (width + LEGEND_WIDTH, max(height, legend_height(len(names))))
        pixels = np.asarray(shown)
        assert tuple(pixels[ROW_HEIGHT // 2 + 6, width + 10]) == class_colour(0)  # the legend's first swatch
        assert pixels[:height, :width].std() > 0  # the segmented image, not the legend's white
    table = css(browser, "#shares")[0]
    assert [cell.text for cell in table.find_elements("css selector", "tr.class-row td.class-name")] == names
    assert [cell.text for cell in table.find_elements("css selector", "thead th")][3:] == variants
    for row in table.find_elements("css selector", "tr.class-row, tr.unlabelled"):
        assert all(re.fullmatch(r"\d+\.\d %", cell.text) for cell in row.find_elements("css selector", "td")[3:])
    if target := os.environ.get("OVSEG_SCREENSHOT"):
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1600, min(max(height + 40, 900), 2000))
        time.sleep(1)
        browser.save_screenshot(str(Path(target).resolve()))
        browser.set_window_size(1600, 1300)

    # Why: the outlined proposals, and a table row for each, under the same picture size.
    css(browser, "#why input")[0].click()
    (kind, text), _ = segment(browser, classes, ["adapter_ens"])
    assert kind == "ok", text
    selector = "#why-picture-adapter-ens img"
    outlined = wait(browser, lambda d: css(d, selector) and css(d, selector)[0], "the why picture")
    wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", outlined) > 0, "it to load")
    assert browser.execute_script("return arguments[0].naturalWidth", outlined) == width + LEGEND_WIDTH
    rows = css(browser, "#why-adapter-ens tbody tr")
    assert rows and all(len(row.find_elements("css selector", "td")) == 6 for row in rows)
    css(browser, "#why input")[0].click()


def test_bad_input_is_answered_in_the_page_and_the_server_keeps_serving(browser, photo, tmp_path):
    path, _classes = photo
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    kind, text = upload(browser, notes)
    assert kind == "error" and text.startswith("notes.png: not an image that can be read"), text
    (kind, text), _ = segment(browser, "sky, grass", ["base"])
    assert kind == "error" and text.startswith("notes.png: not an image that can be read"), text
    upload(browser, path)
    for typed, message in (
        ("", "no classes: type class names"),
        ("grass|lawn|meadow", "one class only, 'grass' with the synonyms lawn, meadow"),
        (", ".join(f"c{i}" for i in range(500)), "500 classes: at most 150 are accepted"),
    ):
        (kind, text), _ = segment(browser, typed, ["base"])
        assert kind == "error" and text.startswith(message), text
    (kind, text), _ = segment(browser, "sky, zebra", ["maskpool"])
    assert kind == "ok" and text.startswith(f"segmented photo.png, {PHOTO[0]}×{PHOTO[1]} among 2 classes: maskpool"), (
        text
    )


def test_the_pairs_tab_pages_through_a_nouns_pairs(browser):
    open_tab(browser, "pairs")
    kind, text = wait(browser, lambda d: status(d, "pairs-status")[1] and status(d, "pairs-status"), "the pairs")
    assert kind == "ok" and re.fullmatch(r"'.+': \d+ pairs; page 1 of \d+ \(pairs 1–\d+\)", text), text
    wait(browser, lambda d: css(d, "#pairs-gallery img"), "the crops")
    search = css(browser, "#noun-search input, #noun-search textarea")[0]
    noun = text.split("'")[1]
    search.send_keys(noun[:3].upper() + "\n")
    kind, text = wait(
        browser,
        lambda d: status(d, "pairs-status")[1].startswith(f"'{noun[:3]}") and status(d, "pairs-status"),
        "the search",
    )
    assert kind == "ok", text
    pages = int(re.search(r"page 1 of (\d+)", text).group(1))
    css(browser, "#next")[0].click()  # the next page, or the last one again
    expected = f"page {min(2, pages)} of {pages}"
    kind, text = wait(
        browser, lambda d: expected in status(d, "pairs-status")[1] and status(d, "pairs-status"), expected
    )
    assert len(css(browser, "#pairs-gallery img")) > 0 and len(css(browser, "#pairs-table tbody tr")) > 0
    open_tab(browser, "segment")
