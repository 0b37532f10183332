"""The dashboard in headless Chromium: the numbers it shows are the stats endpoint's, on every page.

Needs Debian's ``chromium`` and ``chromium-driver`` (``bash .ci/setup`` installs them when run as
root); without them these tests fail and say so. Screenshots go to the test's tmp folder, and
also to ``$ATLAS_SCREENSHOT_DIR`` when it is set (docs/screenshots was made that way).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson
import pytest

from ..harness import produce
from ..itest_orders import CASES, RAW
from ..web_client import base_url, get, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
DESKTOP, PHONE = (1280, 900), (390, 844)


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: the dashboard tests need Debian's chromium and "
                    "chromium-driver (run `bash .ci/setup` as root, or `apt-get install -y chromium chromium-driver`)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _until(driver: Any, check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def probe(_: Any) -> Any:
        try:
            return check()
        except (WebDriverException, KeyError, ValueError):
            return False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(probe)
    except Exception as exc:
        try:
            logs = driver.get_log("browser")
        except Exception:  # noqa: BLE001
            logs = []
        raise AssertionError(f"dashboard: {what} not shown within {timeout}s; console: {logs}; "
                             f"page: {driver.page_source[:1500]}") from exc


def _text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text).strip()


def _open(driver: Any, url: str, page: str) -> None:
    driver.get(url)
    _until(driver, lambda: driver.execute_script("return document.body.dataset.loaded") == page, f"page {page}")


def _n(value: int) -> str:
    return f"{value:,}"


def test_dashboard_pages_show_the_endpoint_numbers(kafka, metadata_dir: Path, start_worker, browser: Any,
                                                    tmp_path: Path) -> None:
    worker = start_worker(kafka, metadata_dir, app_id="atlas-dash")
    url = base_url(worker)
    for _, value, _, _ in CASES:
        asyncio.run(produce(kafka.bootstrap, RAW, [value], key=b"tombstone" if value is None else None))
    status = {"source": "file:itest.orders", "kind": "file", "state": "idle", "last_poll": None, "rows": 1234,
              "lag": 0, "last_error": "file x.csv: line 3 is not CSV", "time": "2026-01-01T00:00:01+00:00"}
    asyncio.run(produce(kafka.bootstrap, "atlas.sources.status", [orjson.dumps(status)], key=b"file:itest.orders"))
    stats = wait_for(f"{url}/stats/", lambda b: b["complete"] and b["totals"]["total"] == len(CASES))
    wait_for(f"{url}/sources/", lambda b: len(b["sources"]) == 1)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    d = browser

    # Home: health, totals, tier distribution, per-dataset row
    _open(d, f"{url}/?refresh=2#/", "home")
    _until(d, lambda: _text(d, "[data-testid=total]") == _n(stats["totals"]["total"]), "the total")
    assert _text(d, "[data-testid=status]") == "healthy"
    assert _text(d, "[data-testid=health]").startswith("healthy")
    for tier, n in stats["totals"]["tiers"].items():
        assert _text(d, f"[data-testid=tier-{tier}]") == _n(n), tier
    (ds,) = stats["datasets"]
    row = "[data-testid=datasets] tr[data-subject='itest.orders']"
    assert _text(d, f"{row} [data-field=total]") == _n(ds["total"])
    for tier, n in ds["tiers"].items():
        assert _text(d, f"{row} [data-field={tier}]") == _n(n), tier
    d.save_screenshot(str(shots / "home.png"))

    # Monitoring: charts and failures per check
    _open(d, f"{url}/#/monitoring", "monitoring")
    assert d.execute_script("return document.querySelectorAll('svg.chart').length") == 2
    assert d.execute_script("return document.querySelectorAll('svg.chart rect[data-tier]').length") >= 1
    for check, n in ds["failures"].items():
        assert _text(d, f"[data-testid=failures] tr[data-check='{check}'] td.num") == _n(n), check
    d.save_screenshot(str(shots / "monitoring.png"))

    # Sources
    _open(d, f"{url}/#/sources", "sources")
    assert _text(d, "tr[data-source='file:itest.orders'] [data-field=rows]") == _n(1234)
    assert "line 3 is not CSV" in _text(d, "tr[data-source='file:itest.orders']")
    d.save_screenshot(str(shots / "sources.png"))

    # Schema registry: subjects, versions, diff, drift
    _open(d, f"{url}/#/schemas", "schemas")
    versions = get(f"{url}/schemas/subjects/itest.orders/versions")
    assert _text(d, "[data-testid=subjects] tr[data-subject='itest.orders'] [data-field=versions]") == str(len(versions))
    assert "order_id" in _text(d, "[data-testid=fields]")
    assert _text(d, "[data-testid=diff]") == "Same version."
    assert _text(d, "[data-testid=drift] tr[data-drift=coupon] td.num") == _n(ds["drift"]["coupon"])
    d.save_screenshot(str(shots / "schemas.png"))

    # Event log, filtered by type
    _open(d, f"{url}/#/events", "events")
    events = get(f"{url}/events/?limit=50")
    _until(d, lambda: _text(d, "[data-testid=events-total]") == str(events["total"]), "the event count")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(d.find_element(By.ID, "ev-type")).select_by_value("schema.drift")
    drift_total = get(f"{url}/events/?type=schema.drift")["total"]
    _until(d, lambda: _text(d, "[data-testid=events-total]") == str(drift_total), "the filtered event count")
    assert {r.get_attribute("data-type") for r in d.find_elements(By.CSS_SELECTOR, "[data-testid=events] tbody tr")} \
        == {"schema.drift"}
    d.save_screenshot(str(shots / "events.png"))

    # Nothing was fetched from anywhere but the worker (no CDN).
    origins = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert origins and all(o.startswith(url) for o in origins), origins

    # A phone-sized screen: no sideways scrolling of the page, same numbers.
    d.set_window_size(*PHONE)
    _open(d, f"{url}/#/", "home")
    _until(d, lambda: _text(d, "[data-testid=total]") == _n(stats["totals"]["total"]), "the total on a phone")
    assert d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    d.save_screenshot(str(shots / "phone-home.png"))
    _open(d, f"{url}/#/events", "events")
    assert d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    d.save_screenshot(str(shots / "phone-events.png"))

    assert sorted(p.name for p in shots.iterdir()) == sorted(
        ["home.png", "monitoring.png", "sources.png", "schemas.png", "events.png", "phone-home.png",
         "phone-events.png"])
    copy_to = os.environ.get("ATLAS_SCREENSHOT_DIR")
    if copy_to:
        Path(copy_to).mkdir(parents=True, exist_ok=True)
        for p in shots.iterdir():
            shutil.copy(p, Path(copy_to) / p.name)
