"""Drives the web console in headless Chromium (Selenium, Debian's chromium and chromedriver).

    console_browser.py URL SCREENSHOT_DIR TABLE [TOKEN]

Opens URL (the console of a running streamsql, e.g. on pipelines/netflow-live.sql), checks the
pipelines page shows running pipelines whose rows grow, opens the live chart of TABLE from the
pipelines page's link, checks its data points grow over two seconds, runs a query on the query
page, and saves a screenshot of each page to SCREENSHOT_DIR. Prints one JSON line of what it saw;
exits non-zero with the reason when a check fails.
"""

import json
import os
import shutil
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


def number(text):
    return int(text.replace(",", "") or 0)


def main():
    url, shots, table = sys.argv[1], sys.argv[2], sys.argv[3]
    token = sys.argv[4] if len(sys.argv) > 4 else None
    os.makedirs(shots, exist_ok=True)
    seen = {}
    driver = browser()
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(url + (f"?token={token}" if token else "") + "#/pipelines")

        # The pipelines page: a card per pipeline, running, its graph drawn, rows arriving.
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card.pipeline .badge.running")) > 0)
        cards = driver.find_elements(By.CSS_SELECTOR, ".card.pipeline")
        seen["pipelines"] = len(cards)
        seen["graph_nodes"] = len(driver.find_elements(By.CSS_SELECTOR, ".card.pipeline .graph g.node"))
        assert seen["graph_nodes"] >= 2 * len(cards), f"graphs not drawn: {seen}"

        # Read in the page (the cards are redrawn every second).
        def rows_in():
            return driver.execute_script(
                "return [...document.querySelectorAll('.card.pipeline')].reduce((n, c) => n + Number(c.dataset.rowsIn || 0), 0)"
            )

        first = rows_in()
        wait.until(lambda d: rows_in() > first)
        seen["rows_in"] = rows_in()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#table-links a[data-table="{table}"]'))
        driver.save_screenshot(os.path.join(shots, "pipelines.png"))

        # A live chart, opened from the pipelines page: its points grow while we watch.
        driver.find_element(By.CSS_SELECTOR, f'#table-links a[data-table="{table}"]').click()
        wait.until(lambda d: d.find_element(By.ID, "page-tables").is_displayed())

        def points():
            return driver.execute_script("const svg = document.querySelector('#chart svg[data-points]'); return svg ? Number(svg.dataset.points) : 0")

        wait.until(lambda d: points() > 0)
        before = points()
        time.sleep(2)
        after = points()
        seen["chart_kind"] = driver.execute_script("return document.querySelector('#chart svg').dataset.kind")
        seen["points"] = [before, after]
        assert after > before, f"the chart's points did not grow over two seconds: {before} then {after}"
        seen["drawn_circles"] = driver.execute_script("return document.querySelectorAll('#chart svg circle.point').length")
        seen["table_rows"] = driver.execute_script("return document.querySelectorAll('#table-view tbody tr').length")
        driver.save_screenshot(os.path.join(shots, "chart.png"))

        # The query page: SQL over the live tables, a result table and its chart.
        driver.find_element(By.ID, "nav-query").click()
        box = driver.find_element(By.ID, "query-text")
        box.clear()
        box.send_keys(f"SELECT COUNT(*) AS n FROM {table}")
        driver.find_element(By.ID, "query-run").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#query-result tbody tr, #query-result .error"))
        errors = driver.find_elements(By.CSS_SELECTOR, "#query-result .error")
        assert not errors, f"the query failed: {errors[0].text}"
        seen["query_count"] = number(driver.find_element(By.CSS_SELECTOR, "#query-result tbody td").text)
        driver.save_screenshot(os.path.join(shots, "query.png"))

        logs = [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
        assert not logs, f"the page logged errors: {logs}"
    finally:
        driver.quit()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
