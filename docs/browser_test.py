"""Open the built documentation site in headless Chromium and check that it works.

Run by ``nox -s docs-browser`` after ``mkdocs build --strict --site-dir site``::

    python docs/browser_test.py --site site

It serves the site with ``python -m http.server`` on a free port of
127.0.0.1, drives the system's Chromium through its chromedriver (selenium),
and checks, page by page:

- the home page: its title, its heading and the table of bricks;
- the search box: typing a name lists matching pages;
- an API page (``rlbricks.replay``): ``ReplayBuffer`` is rendered with its
  signature and its docstring;
- the getting-started page and the results page render their headings;

and on every page that the browser console holds no ``SEVERE`` message (a
script error, a failed request). A screenshot of each step goes to
``.reports/screenshots/<step>.png``, and ``.reports/docs-browser.xml`` holds
one JUnit test case per check. Chromium and chromedriver come from the
system's packages: ``apt-get install -y chromium chromium-driver`` on Debian.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import subprocess
import sys
import time
import traceback
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / ".reports"
INSTALL_HINT = "apt-get install -y chromium chromium-driver"
TIMEOUT_S = 30


def _find(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(site: Path) -> Iterator[str]:
    """Serve ``site`` on a free localhost port for the duration of the block; yield its URL."""
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(site),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the site server on {url} did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def make_driver(chromium: str, chromedriver: str) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.add_argument("--disable-dev-shm-usage")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)


class Checks:
    """Runs named checks, keeps going after a failure, and reports them all."""

    def __init__(self, driver: Any, base_url: str, shots: Path) -> None:
        self.driver, self.base_url, self.shots = driver, base_url, shots
        self.results: list[tuple[str, float, str | None]] = []

    def run(self, name: str, check: Callable[[], None]) -> None:
        start = time.perf_counter()
        error = None
        try:
            check()
            self.assert_console_clean(name)
        except Exception:
            error = traceback.format_exc()
        finally:
            with contextlib.suppress(Exception):
                self.driver.save_screenshot(str(self.shots / f"{name}.png"))
        seconds = time.perf_counter() - start
        self.results.append((name, seconds, error))
        status = "ok" if error is None else "FAILED"
        print(f"{status:6} {name} ({seconds:.1f} s), screenshot {self.shots / (name + '.png')}")
        if error:
            print(error)

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete")

    def wait(self, condition: Callable[[Any], Any], what: str = "the page") -> Any:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, TIMEOUT_S).until(condition)
        except TimeoutException:
            raise AssertionError(f"timed out after {TIMEOUT_S} s waiting for {what}") from None

    def assert_console_clean(self, name: str) -> None:
        entries = self.driver.get_log("browser")
        for entry in entries:
            print(f"       console {entry['level']}: {entry['message']}")
        severe = [e["message"] for e in entries if e["level"] == "SEVERE"]
        if severe:
            raise AssertionError(f"{name}: the browser console has SEVERE entries: {severe}")

    def write_junit(self, path: Path) -> None:
        suite = ET.Element(
            "testsuite",
            name="docs-browser",
            tests=str(len(self.results)),
            failures=str(sum(error is not None for _, _, error in self.results)),
            errors="0",
            skipped="0",
        )
        for name, seconds, error in self.results:
            case = ET.SubElement(
                suite, "testcase", classname="docs-browser", name=name, time=f"{seconds:.3f}"
            )
            if error is not None:
                ET.SubElement(case, "failure", message=error.strip().splitlines()[-1]).text = error
        path.parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def check_home(c: Checks) -> None:
    from selenium.webdriver.common.by import By

    c.open("")
    title = c.driver.title
    assert title.startswith("rlbricks"), f"home page title is {title!r}"
    heading = c.driver.find_element(By.CSS_SELECTOR, "article h1").text
    assert heading == "rlbricks", f"home page heading is {heading!r}"
    table = c.driver.find_element(By.CSS_SELECTOR, "article table").text
    for brick in ("rlbricks.tensordict", "rlbricks.replay", "rlbricks.trainers", "pip install"):
        assert brick in table, f"the bricks table lacks {brick!r}:\n{table}"
    tabs = c.driver.find_element(By.CSS_SELECTOR, ".md-tabs").text
    for tab in ("Getting started", "Tutorials", "API reference", "Results"):
        assert tab in tabs, f"the navigation tabs lack {tab!r}: {tabs!r}"


def check_search(c: Checks) -> None:
    from selenium.webdriver.common.by import By

    c.open("")
    c.driver.find_element(By.CSS_SELECTOR, "label.md-search__icon, .md-search__input").click()
    box = c.wait(
        lambda d: d.find_element(By.CSS_SELECTOR, "input.md-search__input"), "the search box"
    )
    c.wait(lambda d: box.is_displayed() and box.is_enabled(), "the search box to be usable")
    box.send_keys("ReplayBuffer")

    def results(driver: Any) -> list[Any]:
        return driver.find_elements(By.CSS_SELECTOR, ".md-search-result__item")

    items = c.wait(results, "search results for 'ReplayBuffer'")
    text = " ".join(item.text for item in items)
    assert "ReplayBuffer" in text, f"no result mentions ReplayBuffer: {text[:500]!r}"
    meta = c.driver.find_element(By.CSS_SELECTOR, ".md-search-result__meta").text
    print(f"       search: {meta!r}, {len(items)} results shown")


def check_api_page(c: Checks) -> None:
    from selenium.webdriver.common.by import By

    c.open("api/replay/")
    heading = c.driver.find_element(By.CSS_SELECTOR, "article h1").text
    assert "rlbricks.replay" in heading, f"API page heading is {heading!r}"
    entry = c.driver.find_element(By.ID, "rlbricks.replay.ReplayBuffer")
    assert "ReplayBuffer" in entry.text, f"the ReplayBuffer heading reads {entry.text!r}"
    c.driver.execute_script("arguments[0].scrollIntoView()", entry)
    article = c.driver.find_element(By.CSS_SELECTOR, "article").text
    for expected in (
        "ReplayBuffer(",
        "storage",
        "sampler",
        "batch_size",
        "PrioritizedReplayBuffer",
    ):
        assert expected in article, f"the API page lacks {expected!r}"


def check_getting_started(c: Checks) -> None:
    from selenium.webdriver.common.by import By

    c.open("getting-started/")
    headings = [h.text for h in c.driver.find_elements(By.CSS_SELECTOR, "article h2")]
    for expected in ("Install", "Train PPO on CartPole", "The same agent in Python"):
        assert any(expected in h for h in headings), (
            f"getting started lacks {expected!r}: {headings}"
        )
    code = c.driver.find_element(By.CSS_SELECTOR, "article pre code").text
    assert "pip install" in code, f"the first code block is {code[:200]!r}"


def check_results(c: Checks) -> None:
    from selenium.webdriver.common.by import By

    c.open("results/")
    headings = [h.text for h in c.driver.find_elements(By.CSS_SELECTOR, "article h2")]
    for expected in ("Example agents", "Benchmarks"):
        assert any(expected in h for h in headings), (
            f"the results page lacks {expected!r}: {headings}"
        )
    broken = c.driver.execute_script(
        "return Array.from(document.querySelectorAll('article img'))"
        ".filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src)"
    )
    assert not broken, f"images that did not load: {broken}"
    images = c.driver.find_elements(By.CSS_SELECTOR, "article img")
    if images:  # the screenshot shows the first learning curve
        c.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", images[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--site", type=Path, default=ROOT / "site", help="the built site (mkdocs build)"
    )
    parser.add_argument("--screenshots", type=Path, default=REPORTS / "screenshots")
    parser.add_argument("--junitxml", type=Path, default=REPORTS / "docs-browser.xml")
    args = parser.parse_args(argv)

    chromium = _find("chromium", "chromium-browser", "google-chrome")
    chromedriver = _find("chromedriver")
    if chromium is None or chromedriver is None:
        missing = " and ".join(
            n for n, p in (("chromium", chromium), ("chromedriver", chromedriver)) if p is None
        )
        print(
            f"the browser test needs {missing}; install them with: {INSTALL_HINT}", file=sys.stderr
        )
        return 2
    if not (args.site / "index.html").is_file():
        print(
            f"no built site in {args.site}: run mkdocs build --site-dir {args.site} first",
            file=sys.stderr,
        )
        return 2
    args.screenshots.mkdir(parents=True, exist_ok=True)
    for old in args.screenshots.glob("*.png"):
        old.unlink()

    with serve(args.site) as url:
        print(f"serving {args.site} on {url}")
        driver = make_driver(chromium, chromedriver)
        try:
            print(f"browser: {driver.capabilities.get('browserVersion', '?')} (headless)")
            checks = Checks(driver, url, args.screenshots)
            checks.run("home", lambda: check_home(checks))
            checks.run("search", lambda: check_search(checks))
            checks.run("api-replay", lambda: check_api_page(checks))
            checks.run("getting-started", lambda: check_getting_started(checks))
            checks.run("results", lambda: check_results(checks))
        finally:
            driver.quit()
    checks.write_junit(args.junitxml)
    failed = [name for name, _, error in checks.results if error is not None]
    passed = len(checks.results) - len(failed)
    print(f"docs-browser: {passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
