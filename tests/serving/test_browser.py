"""The web page at `/`, driven in real headless Chromium against the running service (API keys on).

Needs Debian's chromium and chromedriver (skipped without them). Selenium is given both paths, so Selenium
Manager never tries to download a browser. The tiny model barely ranks anything, so these tests check what the
page does (requests, rendering, errors, filters), never which photo comes first.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from servetools import API_KEY, MAX_UPLOAD

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 30
QUERY = "a large red circle on the left"

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(f"browser tests need {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)",
                allow_module_level=True)

selenium = pytest.importorskip("selenium")

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    browser.set_page_load_timeout(WAIT_S)
    yield browser
    browser.quit()


@pytest.fixture
def page(driver, service):
    """A freshly loaded page with the API key already saved (as a returning user has it)."""
    open_page(driver, service.http_url, API_KEY)
    yield driver
    assert_no_js_errors(driver)


# --- helpers ---------------------------------------------------------------------------------------------
def open_page(driver, url: str, key: str | None) -> None:
    driver.get(url + "/")
    if key is None:
        driver.execute_script("localStorage.removeItem('photoseek-api-key')")
    else:
        driver.execute_script("localStorage.setItem('photoseek-api-key', arguments[0])", key)
    driver.get(url + "/")  # the page reads the key from localStorage as it loads
    WebDriverWait(driver, WAIT_S).until(lambda d: d.find_element(By.ID, "search-form").is_displayed())


def wait_until(driver, condition, message: str):
    return WebDriverWait(driver, WAIT_S).until(condition, message)


def status(driver) -> str:
    return driver.find_element(By.ID, "status").text


def wait_status(driver, pattern: str) -> str:
    """Wait until #status matches the regex (a finished search, not 'Searching…'), and return it."""
    rx = re.compile(pattern)
    wait_until(driver, lambda d: rx.search(status(d)), f"#status never matched {pattern!r}")
    return status(driver)


def result_ids(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#results .result'), n => n.dataset.id)")


def result_names(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#results .result .name'), n => n.textContent)")


def text_search(driver, text: str) -> str:
    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(text, Keys.ENTER)
    return wait_status(driver, r"^(\d+ results?|No results) for “" + re.escape(text) + "”")


def set_date(driver, element_id: str, value: str) -> None:
    driver.execute_script("""
        const input = document.getElementById(arguments[0]);
        input.value = arguments[1];
        input.dispatchEvent(new Event('input', {bubbles: true}));
        input.dispatchEvent(new Event('change', {bubbles: true}));
    """, element_id, value)


def browser_log(driver) -> list[dict]:
    try:
        return driver.get_log("browser")
    except Exception:  # noqa: BLE001 - a driver without the log endpoint: nothing to check
        return []


def assert_no_js_errors(driver, allowed: tuple[str, ...] = ()) -> None:
    severe = [e for e in browser_log(driver) if e.get("level") == "SEVERE"
              and not any(a in e.get("message", "") for a in allowed)]
    assert severe == [], f"errors in the browser console: {severe}"


def thumbs_loaded(driver, count: int = 1) -> bool:
    return driver.execute_script("""
        const imgs = Array.from(document.querySelectorAll('#results img.thumb')).slice(0, arguments[0]);
        return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
    """, count)


# --- tests -----------------------------------------------------------------------------------------------
def test_text_search_with_key_shows_results_and_thumbnails(driver, service):
    open_page(driver, service.http_url, None)
    assert driver.title == "photoseek"
    wait_until(driver, lambda d: "photos indexed" in d.find_element(By.ID, "health-text").text,
               "the health line never showed the point count")
    key = driver.find_element(By.ID, "api-key")
    assert key.get_attribute("type") == "password" and key.get_attribute("value") == ""
    assert driver.find_element(By.ID, "key-hint").text == "required"  # /healthz says auth is on
    key.send_keys(API_KEY)
    assert driver.execute_script("return localStorage.getItem('photoseek-api-key')") == API_KEY

    line = text_search(driver, QUERY)
    assert re.match(r"^\d+ results? for “" + re.escape(QUERY) + r"” in \d+\.\d ms", line), line
    ids = result_ids(driver)
    assert len(ids) >= 1 and all(re.fullmatch(r"[0-9a-f-]{36}", i) for i in ids), ids
    assert line.startswith(f"{len(ids)} result")
    wait_until(driver, lambda d: thumbs_loaded(d, 1), "the first thumbnail never loaded")
    first = driver.find_element(By.CSS_SELECTOR, "#results .result")
    src = first.find_element(By.CSS_SELECTOR, "img.thumb").get_attribute("src")
    assert src.startswith(f"{service.http_url}/v1/photos/{ids[0]}/thumbnail?") and "sig=" in src
    scores = [s.get_attribute("textContent") for s in driver.find_elements(By.CSS_SELECTOR, "#results .result .score")]
    assert len(scores) == len(ids) and all(re.fullmatch(r"-?\d+\.\d{3}", s) for s in scores), scores
    name = first.find_element(By.CSS_SELECTOR, ".name")
    assert name.text and "/" not in name.text and name.get_attribute("title").endswith("/" + name.text)
    assert first.find_element(By.CSS_SELECTOR, "button.similar").text == "Similar"

    driver.refresh()  # the key survives a reload
    wait_until(driver, lambda d: d.find_element(By.ID, "api-key").get_attribute("value") == API_KEY,
               "the API key was not restored from localStorage")
    assert_no_js_errors(driver)


def test_search_without_key_shows_401(driver, service):
    open_page(driver, service.http_url, API_KEY)
    key = driver.find_element(By.ID, "api-key")
    assert key.get_attribute("value") == API_KEY
    text_search(driver, QUERY)
    assert result_ids(driver)

    key.send_keys(Keys.CONTROL, "a")
    key.send_keys(Keys.BACK_SPACE)
    assert key.get_attribute("value") == ""
    assert driver.execute_script("return localStorage.getItem('photoseek-api-key')") is None
    driver.find_element(By.ID, "q").send_keys(Keys.ENTER)  # same words again, now without a key
    line = wait_status(driver, "API key")
    assert "missing API key" in line, line  # the server saw no Authorization header at all
    assert "error" in driver.find_element(By.ID, "status").get_attribute("class")
    assert result_ids(driver) == []

    key.send_keys("wrong-key-0123456789abcdef")
    driver.find_element(By.ID, "q").send_keys(Keys.ENTER)
    assert "invalid API key" in wait_status(driver, "invalid API key")
    assert result_ids(driver) == []
    assert_no_js_errors(driver, allowed=("status of 401",))  # the failed fetches themselves


def test_similar_runs_more_like_this(page):
    text_search(page, QUERY)
    first = page.find_element(By.CSS_SELECTOR, "#results .result")
    clicked = first.get_attribute("data-id")
    name = first.find_element(By.CSS_SELECTOR, ".name").text
    first.find_element(By.CSS_SELECTOR, "button.similar").click()
    line = wait_status(page, r"^\d+ photos? similar to ")
    assert f"similar to {name} ({clicked[:8]})" in line, line
    ids = result_ids(page)
    assert ids and clicked not in ids  # the API leaves the query photo out
    assert line.startswith(f"{len(ids)} photo")
    wait_until(page, lambda d: thumbs_loaded(d, 1), "thumbnails of the similar photos never loaded")


def test_search_by_image_upload(page, photo_tree):
    upload = photo_tree / "dated" / "scene.png"
    page.find_element(By.ID, "image-input").send_keys(str(upload.resolve()))
    line = wait_status(page, r"^\d+ results? for image “scene\.png”")
    assert len(result_ids(page)) >= 1, line
    assert page.find_element(By.ID, "query-image").is_displayed()
    assert "scene.png" in page.find_element(By.ID, "query-image-label").text
    wait_until(page, lambda d: thumbs_loaded(d, 1), "thumbnails of the image search never loaded")


def test_drop_an_image_on_the_page(page):
    # a real OS drag cannot be scripted; a synthetic drop event carries a real PNG file made in the page
    page.execute_script("""
        const canvas = document.createElement('canvas');
        canvas.width = canvas.height = 48;
        const ctx = canvas.getContext('2d');
        ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, 48, 48);
        ctx.fillStyle = '#d00'; ctx.beginPath(); ctx.arc(14, 24, 10, 0, 2 * Math.PI); ctx.fill();
        canvas.toBlob(blob => {
            const data = new DataTransfer();
            data.items.add(new File([blob], 'dropped.png', {type: 'image/png'}));
            const zone = document.getElementById('drop-zone');
            zone.dispatchEvent(new DragEvent('dragenter', {bubbles: true, cancelable: true, dataTransfer: data}));
            zone.dispatchEvent(new DragEvent('drop', {bubbles: true, cancelable: true, dataTransfer: data}));
        }, 'image/png');
    """)
    wait_status(page, r"^\d+ results? for image “dropped\.png”")
    assert result_ids(page)
    assert "dragging" not in page.find_element(By.ID, "drop-zone").get_attribute("class")


def test_load_more_pages_with_offset(page):
    Select(page.find_element(By.ID, "limit")).select_by_visible_text("12")
    text_search(page, QUERY)
    first_page = result_ids(page)
    assert len(first_page) == 12
    page.find_element(By.ID, "load-more").click()
    wait_until(page, lambda d: len(result_ids(d)) > 12, "load more added nothing")
    both = result_ids(page)
    assert both[:12] == first_page and len(set(both)) == len(both) == 24
    assert status(page).startswith("24 results for")


def test_date_filter_applies_to_text_image_and_similar(page, photo_tree):
    set_date(page, "taken-after", "2020-01-01")
    line = text_search(page, QUERY)
    assert "taken on or after 2020-01-01" in line, line
    assert sorted(result_names(page)) == ["2021.jpg", "2023.jpg"]
    assert len(result_ids(page)) == 2
    wait_until(page, lambda d: thumbs_loaded(d, 2), "thumbnails of the dated photos never loaded")

    set_date(page, "taken-before", "2022-01-01")  # changing a filter re-runs the search on screen
    wait_status(page, r"^1 result for “.*taken 2020-01-01 – 2022-01-01")
    assert result_names(page) == ["2021.jpg"]

    set_date(page, "taken-before", "")
    wait_status(page, r"^2 results for “.*taken on or after 2020-01-01$")
    page.find_element(By.ID, "image-input").send_keys(str((photo_tree / "dated" / "2019.jpg").resolve()))
    line = wait_status(page, r"^\d+ results? for image “2019\.jpg”")
    assert "taken on or after 2020-01-01" in line, line
    assert sorted(result_names(page)) == ["2021.jpg", "2023.jpg"]

    card = next(c for c in page.find_elements(By.CSS_SELECTOR, "#results .result")
                if c.find_element(By.CSS_SELECTOR, ".name").text == "2021.jpg")
    card.find_element(By.CSS_SELECTOR, "button.similar").click()
    line = wait_status(page, r"^\d+ photos? similar to 2021\.jpg")
    assert "taken on or after 2020-01-01" in line, line
    assert result_names(page) == ["2023.jpg"]  # the filter holds, and the query photo is left out

    page.find_element(By.ID, "clear-filters").click()
    wait_status(page, r"^\d+ photos? similar to 2021\.jpg \(\w+\) in [\d.]+ ms$")
    assert len(result_ids(page)) > 2


def _noise_png(path: Path, side: int) -> Path:
    import numpy as np
    from PIL import Image

    pixels = (np.random.default_rng(side).random((side, side, 3)) * 255).astype("uint8")
    Image.fromarray(pixels).save(path, "PNG")
    return path


@pytest.mark.parametrize("side", [320, 700], ids=["over-upload-limit", "over-body-limit"])
def test_upload_too_large_shows_413(page, tmp_path, side):
    """~300 KB passes the body-size check and fails the 256 KiB file check; ~1.4 MB fails on Content-Length."""
    big = _noise_png(tmp_path / f"big-{side}.png", side)
    page.find_element(By.ID, "image-input").send_keys(str(big))
    line = wait_status(page, "^Upload too large: ")
    assert str(MAX_UPLOAD) in line, line  # the API's own message, with the limit
    assert "error" in page.find_element(By.ID, "status").get_attribute("class")
    assert result_ids(page) == []
    assert_no_js_errors(page, allowed=("status of 413",))
