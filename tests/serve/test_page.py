"""The page at `/` in a real browser: Playwright driving Debian's Chromium (`playwright install` downloads its own
browser, which this project never needs), with a fake camera for the webcam. Each tab's screenshot is saved to
`$DLAPPS_SCREENSHOTS` when set (to look at), else to the test's temporary folder."""

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import EXAMPLES, FACES, write_clip

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'dlapps[serve]'")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium")


@pytest.fixture(scope="module")
def server(registry, tmp_path_factory):
    """The app on 127.0.0.1 at a free port, in a thread, stopped after the module; a gallery of its own."""
    import copy

    import uvicorn

    from dlapps.serve import create_app

    registry = copy.copy(registry)
    registry.gallery_path = tmp_path_factory.mktemp("page") / "gallery.db"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(registry), host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not running.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def page(server):
    args = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--no-sandbox"]
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=args)
        context = browser.new_context(permissions=["camera"], viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.goto(server)
        yield page
        browser.close()


def shot(page, name, tmp_path):
    folder = Path(os.environ.get("DLAPPS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_classify_and_detect_tabs_show_their_results(page, tmp_path):
    page.set_input_files("#classify-file", str(EXAMPLES / "chelsea.png"))
    page.wait_for_selector("#classify-out .verdict")
    assert page.inner_text("#classify-out .verdict") == "cat"
    shot(page, "classify", tmp_path)
    page.click("#tabs button[data-tab=detect]")
    page.check("#detect-grid")
    page.set_input_files("#detect-file", str(EXAMPLES / "raccoons.jpg"))
    page.wait_for_function("document.getElementById('detect-out').textContent.includes('box(es)')")
    assert "raccoon" in page.inner_text("#detect-out") and "Grid: 320px input" in page.inner_text("#detect-out")
    assert page.evaluate("document.getElementById('detect-canvas').width") == 600
    shot(page, "detect", tmp_path)
    assert page.errors == []


def test_faces_tab_verifies_enrolls_and_identifies(page, tmp_path):
    page.click("#tabs button[data-tab=faces]")
    page.set_input_files("#faces-a", str(EXAMPLES / "astronaut.png"))
    page.set_input_files("#faces-b", str(FACES / "astronaut_face.jpg"))
    page.wait_for_selector("#verify-out .verdict")
    assert page.inner_text("#verify-out .verdict").startswith("Same person")
    assert page.locator("#verify-out .chips img").count() == 2
    page.fill("#subject-name", "Eileen")
    page.set_input_files("#subject-photo", str(EXAMPLES / "astronaut.png"))
    page.click("#subject-add")
    page.wait_for_selector("#subjects li:has-text('Eileen')")
    page.set_input_files("#identify-file", str(FACES / "astronaut_face.jpg"))
    page.wait_for_function("document.getElementById('identify-out').textContent.startsWith('Eileen')")
    shot(page, "faces", tmp_path)
    assert page.errors == []


def test_style_tab_paints_with_a_picked_painting(page, tmp_path):
    page.click("#tabs button[data-tab=style]")
    page.wait_for_selector("#paintings figure.chosen img")
    page.set_input_files("#style-file", str(EXAMPLES / "chelsea.png"))
    page.wait_for_function("document.getElementById('style-img').src.startsWith('data:image/png')")
    assert page.evaluate("document.getElementById('style-img').naturalWidth") == 451
    page.check("#style-losses")
    page.wait_for_function("document.getElementById('style-out').textContent.includes('J_style')", timeout=60000)
    shot(page, "style", tmp_path)
    assert page.errors == []


def test_video_upload_plays_and_the_webcam_streams(page, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4")
    page.click("#tabs button[data-tab=detect]")
    page.set_input_files(".video[data-app=detect]", str(clip))
    page.wait_for_selector("#detect-live video")
    page.wait_for_function("document.querySelector('#detect-live video').readyState >= 2", timeout=30000)
    assert page.evaluate("document.querySelector('#detect-live video').duration") > 0
    page.click(".webcam[data-app=detect]")  # Chromium's fake camera: a moving test pattern
    page.wait_for_function("(document.querySelector('#detect-live img') || {}).src?.startsWith('blob:')",
                           timeout=30000)  # fmt: skip
    shot(page, "webcam", tmp_path)
    page.click(".webcam[data-app=detect]")
    assert page.inner_text(".webcam[data-app=detect]") == "Webcam" and page.errors == []
