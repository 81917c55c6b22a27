"""``mobivision serve`` in a real browser: the CLI (``tools/serve.py``) serves a tiny detector on a loopback port,
headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by Selenium without Selenium Manager)
picks an image and a text file on the page, and the page shows the result line and the error.

``MOBIVISION_SCREENSHOT=1`` also saves the page with its result to ``docs/serve_page.png`` (the README's picture).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

import mobivision

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "serve_page.png"
SCORE_THRESHOLD = 0.6  # a few boxes of the random tiny detector, not fifty

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
        reason="chromium and chromium-driver are not installed: apt-get install chromium chromium-driver",
    ),
]
pytest.importorskip("selenium", reason="selenium is not installed: pip install selenium")
pytest.importorskip("starlette", reason="the serve extra is not installed: pip install 'mobivision[serve]'")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from serving import serving, smooth_photo  # noqa: E402


@pytest.fixture(scope="module")
def server(tiny_task_checkpoints: dict[str, Path]) -> Iterator[tuple[str, Path]]:
    """``python tools/serve.py detector.ckpt --port N --score-threshold 0.6`` running (in the checkpoint's folder,
    so the page names it briefly): ``(url, checkpoint)``."""
    checkpoint = tiny_task_checkpoints["detector"]
    with serving(checkpoint, "--max-upload-mb", "5", "--score-threshold", str(SCORE_THRESHOLD)) as (url, _):
        yield url, checkpoint


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager downloads nothing
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for_result_or_error(driver: webdriver.Chrome) -> None:
    def done(d: webdriver.Chrome) -> bool:
        return d.find_element(By.ID, "line").text != "" or d.find_element(By.ID, "error").is_displayed()

    WebDriverWait(driver, 30).until(done)


def test_the_page_shows_the_result_line_then_an_error(
    server: tuple[str, Path], browser: webdriver.Chrome, tmp_path: Path
) -> None:
    url, checkpoint = server
    photo = tmp_path / "street.png"
    Image.fromarray(smooth_photo(400, 560, 3)).save(photo)
    browser.get(url)
    assert "detection model" in browser.find_element(By.CLASS_NAME, "model").text
    assert not browser.find_element(By.ID, "error").is_displayed()

    browser.find_element(By.ID, "file").send_keys(str(photo))
    _wait_for_result_or_error(browser)
    assert not browser.find_element(By.ID, "error").is_displayed()
    expected = mobivision.load(checkpoint)(photo, score_threshold=SCORE_THRESHOLD)
    assert browser.find_element(By.ID, "line").text == expected.line()
    picture = browser.find_element(By.ID, "picture")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", picture) == 560
    assert not browser.find_element(By.ID, "map").is_displayed()  # a detector: no map
    if os.environ.get("MOBIVISION_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        browser.save_screenshot(str(SCREENSHOT))

    text = tmp_path / "photo.txt"
    text.write_text("not an image\n")
    browser.find_element(By.ID, "file").send_keys(str(text))
    _wait_for_result_or_error(browser)
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed()
    assert error.text.startswith("photo.txt is not an image Pillow can read (")
    assert browser.find_element(By.ID, "line").text == ""

    browser.find_element(By.ID, "file").send_keys(str(photo))  # and the server still answers
    _wait_for_result_or_error(browser)
    assert browser.find_element(By.ID, "line").text == expected.line()

    strip = tmp_path / "strip.png"  # valid, but too elongated to draw: the result, and why there is no picture
    Image.new("RGB", (600, 2), (90, 120, 150)).save(strip)
    browser.find_element(By.ID, "file").send_keys(str(strip))
    _wait_for_result_or_error(browser)
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert (
        browser.find_element(By.ID, "line").text
        == mobivision.load(checkpoint)(strip, score_threshold=SCORE_THRESHOLD).line()
    )
    assert not browser.find_element(By.ID, "picture").is_displayed()
    assert browser.find_element(By.ID, "no-picture").text == (
        "no picture: strip.png: 600 x 2 pixels is too elongated to draw (over 32:1)"
    )

    browser.find_element(By.ID, "file").send_keys(str(photo))  # the next picture shows again
    _wait_for_result_or_error(browser)
    assert browser.find_element(By.ID, "picture").is_displayed()
    assert not browser.find_element(By.ID, "no-picture").is_displayed()
