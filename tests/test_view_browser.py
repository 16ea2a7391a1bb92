"""``fgbg view`` in a real browser: Debian's headless Chromium driven by Selenium through the
packaged chromedriver (nothing downloaded at run time). Screenshots go to
``$FGBG_TEST_ARTIFACTS`` (default: the test's tmp dir); the README's come from this test
(``FGBG_TEST_ARTIFACTS=docs/img``)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fgbg.builder import BuildConfig, build
from fgbg.builder.view import ViewData
from fgbg.builder.view.server import ViewServer
from fgbg.readers import open_dataset

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver")
if CHROMIUM is None or DRIVER is None:
    pytest.skip("Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver; "
                ".ci/run does this)", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

pytestmark = pytest.mark.xdist_group("browser")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Iterator[tuple[Path, str]]:
    out = tmp_path_factory.mktemp("browser") / "ds"
    build(out, BuildConfig(placements=3, shard_size=7), *demo_inputs, progress=False, workers=1)
    server = ViewServer(("127.0.0.1", 0), ViewData(str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield out, server.url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu", "--no-first-run", "--disable-background-networking"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = Path(os.environ.get("FGBG_TEST_ARTIFACTS") or tmp_path_factory.mktemp("screenshots"))
    where.mkdir(parents=True, exist_ok=True)
    return where


def wait(condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def no_console_errors(driver: Any) -> None:
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


_PAINTED = """
const out = [];
for (const img of document.querySelectorAll(arguments[0])) {
  if (!img.complete || img.naturalWidth === 0) { out.push(-1); continue; }
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let lo = 255, hi = 0;
  for (let k = 0; k < d.length; k += 4) { lo = Math.min(lo, d[k]); hi = Math.max(hi, d[k]); }
  out.push(hi - lo);
}
return out;
"""


def test_grid_filter_sample_and_overview(served: tuple[Path, str], browser: Any, artifacts: Path) -> None:
    dataset, url = served
    ds = open_dataset(dataset)
    browser.get(url)
    wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#grid img.thumb"), "the grid")
    thumbs = browser.find_elements(By.CSS_SELECTOR, "#grid img.thumb")
    assert len(thumbs) == 54  # one page of up to 100: the whole demo dataset
    spread = wait(lambda: (s := browser.execute_script(_PAINTED, "#grid img.thumb")) and min(s) >= 0 and s,
                  "thumbnails to load")
    assert min(spread) > 20  # decoded and not blank: every thumbnail has contrast
    assert "1 of 1" in browser.find_element(By.ID, "page-info").text
    browser.save_screenshot(str(artifacts / "view-grid.png"))
    no_console_errors(browser)

    Select(browser.find_element(By.ID, "filter-bg")).select_by_value("1")
    browser.find_element(By.ID, "apply").click()
    wait(lambda: "bg=1" in browser.current_url, "the filter in the URL")
    wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#grid img.thumb"), "the filtered grid")
    keys = [e.get_attribute("data-key") for e in browser.find_elements(By.CSS_SELECTOR, "#grid img.thumb")]
    want = [s["key"] for s in ds if s["meta"]["bg"]["index"] == 1]
    assert keys == want and 0 < len(keys) < 54
    no_console_errors(browser)

    browser.get(url + f"?view=sample&i={int(keys[1])}&bg=1")  # a shared link: filter and sample in the URL
    wait(lambda: browser.find_elements(By.ID, "annotation"), "the sample page")
    annotation = browser.find_element(By.ID, "annotation").text
    sample = ds[int(keys[1])]
    assert f'"index": {int(keys[1])}' in annotation and sample["meta"]["bg"]["name"] in annotation
    legend = browser.find_element(By.ID, "depth-legend").text
    assert "0 near" in legend and "255 far" in legend
    wait(lambda: "move over" in browser.find_element(By.ID, "depth-value").text, "the depth map to load")
    depth = browser.find_element(By.ID, "depth")
    webdriver.ActionChains(browser).move_to_element_with_offset(depth, 0, 0).perform()  # the centre
    value = wait(lambda: (t := browser.find_element(By.ID, "depth-value").text).startswith("level") and t,
                 "the level under the cursor")
    level, _, where = value.removeprefix("level ").partition(" at ")
    x, y = (int(v) for v in where.strip("()").split(", "))
    assert int(level) == sample["depth"][y, x]  # the stored 8-bit level at that pixel
    assert browser.find_element(By.ID, "prev").get_attribute("href").endswith(f"i={int(keys[0])}&view=sample") or \
        f"i={int(keys[0])}" in browser.find_element(By.ID, "prev").get_attribute("href")
    box = browser.find_element(By.ID, "box")
    assert box.size["width"] == 2 * sample["meta"]["w"] and box.size["height"] == 2 * sample["meta"]["h"]
    wait(lambda: min(browser.execute_script(_PAINTED, "#composite, #mask, #depth, #input-bg, #input-fg")) > 0,
         "the sample's images")
    browser.save_screenshot(str(artifacts / "view-sample.png"))
    no_console_errors(browser)

    browser.get(url + "?view=overview")
    wait(lambda: browser.find_elements(By.ID, "statistics"), "the overview")
    assert "54" in browser.find_element(By.ID, "counts").text
    assert "plane" in browser.find_element(By.ID, "depth-source").text
    browser.find_element(By.ID, "verify").click()
    # the result line exists only once the POST has answered: look for it, do not demand it at once
    result = wait(lambda: (found := browser.find_elements(By.ID, "verify-result"))
                  and (t := found[0].text).startswith("OK") and t, "verify to finish", timeout=120)
    assert result.startswith("OK: 54 samples")
    browser.save_screenshot(str(artifacts / "view-overview.png"))
    no_console_errors(browser)


def test_people_page(tmp_path: Path, demo_inputs: tuple[Path, Path], browser: Any, artifacts: Path) -> None:
    """--people with --position floor: one box per person, sized as stored, and the instance map."""
    out = tmp_path / "crowd"
    cfg = BuildConfig(placements=2, shard_size=9, people=(3, 3), max_occlusion=0.5, position="floor",
                      person_height=(1.5, 1.9), fg_size=(60, 110), keep_aspect=True)
    build(out, cfg, *demo_inputs, progress=False, workers=1)
    server = ViewServer(("127.0.0.1", 0), ViewData(str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        meta = open_dataset(out)[4]["meta"]
        browser.get(server.url + "?view=sample&i=4")
        wait(lambda: browser.find_elements(By.ID, "instances"), "the sample page")
        for p in meta["people"]:
            box = browser.find_element(By.ID, f"box-{p['instance']}")
            assert (box.size["width"], box.size["height"]) == (2 * p["w"], 2 * p["h"])
            assert box.text == str(p["instance"])
        wait(lambda: min(browser.execute_script(_PAINTED, "#composite, #mask, #instances, #depth")) > 0,
             "the sample's images")
        browser.save_screenshot(str(artifacts / "view-people.png"))
        no_console_errors(browser)
    finally:
        server.shutdown()
        server.server_close()
