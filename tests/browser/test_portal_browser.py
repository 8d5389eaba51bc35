"""The results portal in a real browser, over a real workflow run.

Proposals, evaluation and catalogue run as real processes on the real broker. Three proposals are
submitted over HTTP; one is scored by its panel (every criterion 4: a tie), piloted with KPI
measurements on several days and completed. Headless Chromium (Debian's chromium and
chromium-driver, driven by selenium) then searches the portal, filters by a facet, opens the
result, switches its language, and takes screenshots at 390 px and 1280 px; axe-core (npm,
tools/axe) must report no serious or critical violation on any page type, and no page may be
wider than a 390 px screen.

Screenshots: .local/screenshots/<page>-<width>.png (docs/images/ holds a copy of one of each).
"""

from __future__ import annotations

import csv
import io
import shutil
import uuid

import pytest
import requests

from tests.builders import submission
from tests.integration.workflow_support import TOKENS, auth
from tests.support import ROOT, Platform, free_port, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = ROOT / "tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ROOT / ".local" / "screenshots"
MANAGER = auth("manager")
WIDTHS = (390, 1280)
TAG = uuid.uuid4().hex[:8]  # in every title of this run, so that a search finds exactly ours
MEASUREMENTS = [
    ("2026-05-04T07:30:00Z", 40),
    ("2026-05-04T16:00:00Z", 58),
    ("2026-05-05T08:00:00Z", 95),
    ("2026-05-06T08:00:00Z", 120),
    ("2026-05-06T17:45:00Z", 150),
    ("2026-05-08T08:00:00Z", 210),
]


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    p = Platform(
        tmp_path_factory.mktemp("portal"),
        extra_env={"KOKEILU_TOKENS": TOKENS},
        service_env={"catalogue": {"KOKEILU_PUBLIC_BASE_URL": base}},
    )
    p.launch("proposals")
    p.launch("evaluation")
    p.launch("catalogue", port=port)
    for service in ("proposals", "evaluation", "catalogue"):
        p.wait_ready(service)
    yield p
    p.stop()


def _submit(portal, **fields) -> str:
    created = portal.post("proposals", "/v1/proposals", submission(**fields), headers=MANAGER)
    assert created.status_code == 201, created.text
    return created.json()["id"]


def _status(portal, pid) -> str:
    return portal.get("proposals", f"/v1/proposals/{pid}", headers=MANAGER).json()["status"]


def _wait_status(portal, pid, status):
    wait_until(lambda: _status(portal, pid) == status, timeout=60, what=f"{pid} to be {status}")


def _public(portal, path):
    return requests.get(portal.url("catalogue", path), timeout=10)


@pytest.fixture(scope="module")
def pilots(portal):
    """A completed pilot with streamed measurements (en), and two results still in evaluation (fi, sv)."""
    shuttle = _submit(
        portal,
        title=f"Autonomous shuttle feeder for Kera station {TAG}",
        language="en",
        kpis=[{"name": "daily riders", "unit": "riders/day", "baseline": 0, "target": 200}],
    )
    reading = _submit(
        portal,
        title=f"Lukukaverit Keran koulussa {TAG}",
        language="fi",
        focus_area="learning",
        environment="school",
        school_name="Keran koulu",
        summary="Isommat oppilaat lukevat pienempien kanssa kahdesti viikossa.",
        hypothesis="Lukukaverit parantavat lukusujuvuutta.",
        kpis=[{"name": "sanaa minuutissa", "unit": "sanaa/min", "baseline": 60, "target": 80}],
    )
    litter = _submit(
        portal,
        title=f"Skräpsensorer på Strandleden {TAG}",
        language="sv",
        focus_area="sustainable_development",
        environment="waterfront_walkway",
        summary="Sensorer i papperskorgarna längs Strandleden säger när de behöver tömmas.",
        kpis=[{"name": "tömningar per vecka", "unit": "st/vecka", "baseline": 40, "target": 25}],
    )
    _wait_status(portal, shuttle, "in_evaluation")
    view = portal.get("evaluation", f"/v1/evaluations/{shuttle}", headers=MANAGER).json()
    for name in [a["evaluator"] for a in view["evaluation"]["assignments"] if not a["recused"]]:
        assert (
            portal.post(
                "evaluation", f"/v1/evaluations/{shuttle}/conflict", {"conflict": False}, headers=auth(name)
            ).status_code
            == 200
        )
        sheet = dict.fromkeys(("strategy_fit", "feasibility", "impact", "sustainability", "reuse_scalability"), 4)
        scored = portal.post("evaluation", f"/v1/evaluations/{shuttle}/scores", {"scores": sheet}, headers=auth(name))
        assert scored.status_code == 200, scored.text
    _wait_status(portal, shuttle, "approved")
    started = portal.post("proposals", f"/v1/proposals/{shuttle}/pilot/start", {}, headers=MANAGER)
    assert started.status_code == 200, started.text
    for at, value in MEASUREMENTS:
        recorded = portal.post(
            "proposals",
            f"/v1/proposals/{shuttle}/measurements",
            {"kpi": "daily riders", "value": value, "measured_at": at},
            headers=MANAGER,
        )
        assert recorded.status_code in (200, 201), recorded.text
    completed = portal.post(
        "proposals",
        f"/v1/proposals/{shuttle}/pilot/complete",
        {
            "outcome": "iterate",
            "actual_kpis": [{"name": "daily riders", "actual": 180}],
            "lessons_learned": "Riders came once the timetable met every train; winter needs a second vehicle.",
        },
        headers=MANAGER,
    )
    assert completed.status_code == 200, completed.text

    def caught_up():
        done = _public(portal, f"/results/{shuttle}.json")
        series = done.json()["kpis"][0].get("series") if done.status_code == 200 else None
        others = all(_public(portal, f"/results/{pid}.json").status_code == 200 for pid in (reading, litter))
        return done.json()["status"] == "completed" and series and sum(p["count"] for p in series) == 6 and others

    wait_until(caught_up, timeout=90, what="the catalogue to show the completed pilot with its series")
    return {"shuttle": shuttle, "reading": reading, "litter": litter}


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1280,900",
        "--lang=en-GB",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def _viewport(driver, width: int, height: int = 900) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def _axe(driver) -> list[dict]:
    """axe-core's serious and critical violations on the current page (WCAG 2.0/2.1 A and AA rules
    and best practices)."""
    driver.execute_script(AXE.read_text())
    found = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ['violations']})
          .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                                  nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))))
          .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));""")
    return [v for v in found if v["impact"] in ("serious", "critical")]


def _check_page(driver, name: str) -> None:
    """axe at each width, no horizontal overflow at 390 px, and a full-page screenshot of each."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    from selenium.webdriver.common.by import By

    # no script but the schema.org data: every page works without JavaScript
    assert driver.find_elements(By.CSS_SELECTOR, "script:not([type='application/ld+json'])") == [], name
    assert driver.switch_to.active_element.tag_name == "body"
    from selenium.webdriver.common.keys import Keys

    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)  # the first stop: the skip link
    assert driver.switch_to.active_element.get_attribute("class") == "skip", name
    for width in WIDTHS:
        _viewport(driver, width)
        driver.execute_script("window.scrollTo(0, 0)")
        violations = _axe(driver)
        assert violations == [], f"axe on {name} at {width} px: {violations}"
        scroll_width = driver.execute_script("return document.documentElement.scrollWidth")
        assert scroll_width <= width, f"{name} is {scroll_width} px wide on a {width} px screen"
        height = driver.execute_script("return document.documentElement.scrollHeight")
        _viewport(driver, width, min(height, 5000))
        driver.save_screenshot(str(SHOTS / f"{name}-{width}.png"))
    _viewport(driver, 1280)


def _lang(driver) -> str:
    return driver.find_element("tag name", "html").get_attribute("lang")


def test_a_reader_searches_filters_opens_a_result_and_switches_its_language(portal, pilots, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    base = portal.url("catalogue", "")
    driver = browser

    # the landing page, in the browser's language (Accept-Language: en-GB)
    driver.get(base + "/portal")
    assert _lang(driver) == "en" and driver.find_element(By.TAG_NAME, "h1").text.startswith("What Espoo")
    facets = driver.find_element(By.CLASS_NAME, "facets").text
    assert "Smart mobility" in facets and "smart_mobility" not in facets
    _check_page(driver, "landing")

    # full-text search from the landing page's box
    box = driver.find_element(By.ID, "q")
    box.send_keys(f"shuttle {TAG}", Keys.ENTER)
    wait_until(lambda: "/portal/results" in driver.current_url, timeout=10, what="the search results page")
    titles = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "ul.cards h3 a")]
    assert titles == [f"Autonomous shuttle feeder for Kera station {TAG}"], titles
    assert "q=shuttle" in driver.current_url  # a URL a person can share

    # every result, then filtered by a facet (status: completed) with the form, no script involved
    driver.get(base + "/portal/results?lang=en")
    assert len(driver.find_elements(By.CSS_SELECTOR, "ul.cards li")) == 3
    _check_page(driver, "results")
    Select(driver.find_element(By.ID, "f-status")).select_by_value("completed")
    driver.find_element(By.CSS_SELECTOR, "form[role=search] button[type=submit]").click()
    wait_until(lambda: "status=completed" in driver.current_url, timeout=10, what="the filtered list")
    cards = driver.find_elements(By.CSS_SELECTOR, "ul.cards li")
    assert len(cards) == 1 and "Refine and try again" in cards[0].text and "iterate" not in cards[0].text

    # the result: its KPI chart (SVG with title and description), the table and the CSV
    cards[0].find_element(By.CSS_SELECTOR, "h3 a").click()
    wait_until(lambda: f"/results/{pilots['shuttle']}" in driver.current_url, timeout=10, what="the result page")
    assert _lang(driver) == "en"
    chart = driver.find_element(By.CSS_SELECTOR, "figure.kpi svg[role=img]")
    labelled = chart.get_attribute("aria-labelledby").split()
    assert [driver.find_element(By.ID, i).get_attribute("textContent") for i in labelled][
        0
    ] == "daily riders: daily mean"
    description = driver.find_element(By.ID, labelled[1]).get_attribute("textContent")
    assert "6 measurements from 4 May 2026 to 8 May 2026" in description and "target 200" in description
    assert len(chart.find_elements(By.TAG_NAME, "circle")) == 4  # four days measured
    days = driver.find_elements(By.CSS_SELECTOR, "details table tbody th")
    assert [d.get_attribute("textContent") for d in days] == ["4 May 2026", "5 May 2026", "6 May 2026", "8 May 2026"]
    page = driver.find_element(By.TAG_NAME, "main").text
    assert "All criteria scored equally (4.0)." in page and "Strongest" not in page
    assert "Refine and try again" in page and "iterate" not in page
    csv_url = driver.find_element(By.CSS_SELECTOR, "a[type='text/csv']").get_attribute("href")
    rows = list(csv.DictReader(io.StringIO(requests.get(csv_url, timeout=10).text)))
    assert [(r["day"], r["count"], r["mean"], r["last"]) for r in rows] == [
        ("2026-05-04", "2", "49.0", "58.0"),
        ("2026-05-05", "1", "95.0", "95.0"),
        ("2026-05-06", "2", "135.0", "150.0"),
        ("2026-05-08", "1", "210.0", "210.0"),
    ]
    driver.execute_script("document.querySelector('details').open = true")  # the table, in the shots
    _check_page(driver, "result")

    # switch the language: Finnish labels and codes, the lang attribute with them
    driver.find_element(By.CSS_SELECTOR, "a[hreflang=fi]").click()
    wait_until(lambda: _lang(driver) == "fi", timeout=10, what="the Finnish page")
    page = driver.find_element(By.TAG_NAME, "main").text
    assert "Mittarit ajan mittaan" in page and "Kehitetään ja kokeillaan uudelleen" in page
    assert "Kaikki kriteerit saivat saman arvion (4,0)." in page and "4.5.2026" in page
    assert driver.find_element(By.TAG_NAME, "h1").get_attribute("lang") == "en"  # the title stays English
    driver.find_element(By.CSS_SELECTOR, "a[hreflang=sv]").click()
    wait_until(lambda: _lang(driver) == "sv", timeout=10, what="the Swedish page")
    assert "Mätarna över tid" in driver.find_element(By.TAG_NAME, "main").text

    # a Finnish result opens in Finnish without being asked, a Swedish one in Swedish
    driver.get(base + f"/results/{pilots['reading']}")
    assert _lang(driver) == "fi" and not driver.find_element(By.TAG_NAME, "h1").get_attribute("lang")
    assert "Tälle kokeilulle ei ole vielä kirjattu mittauksia." in driver.find_element(By.TAG_NAME, "main").text
    driver.get(base + f"/results/{pilots['litter']}")
    assert _lang(driver) == "sv" and "Under bedömning" in driver.find_element(By.TAG_NAME, "main").text

    # the open-data page and a missing result (a friendly 404 page for a browser)
    driver.get(base + "/portal/open-data?lang=sv")
    assert "kokeilu.results.v1" in driver.find_element(By.ID, "topic").text
    _check_page(driver, "open-data")
    driver.get(base + f"/results/{uuid.uuid4()}?lang=en")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Page not found"
    _check_page(driver, "not-found")
    driver.get(base + "/portal/results?status=nope&lang=en")
    assert "“nope” is not a valid value for status" in driver.find_element(By.TAG_NAME, "main").text
