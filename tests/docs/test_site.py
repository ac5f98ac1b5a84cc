"""The documentation site, read the way a reader reads it: in a real browser.

The site is built from the tree as it is (``sphinx-build -W -n``, into a temporary folder), served
by ``http.server`` on 127.0.0.1 on a free port, and read in headless Chromium (Debian's package,
which ``.ci/services`` installs) through Playwright. Starting from the index, every page of the
site is opened, and:

* no page has a JavaScript error, a failed request, a request to another site (the site is read
  offline, so MathJax and everything else must come with it) or an image that fails to load;
* no link leads to a missing page, file or anchor;
* each tutorial page shows every figure its notebook draws, and its title names the tutorial; the
  tutorials' index has a card with a thumbnail for each;
* the search page finds ``LitTrainer``, and the API page lists every parameter of ``LitTrainer``.

Screenshots of the site's index, the tutorials' index and a tutorial page go to ``$NEUROMANCER_TEST_ARTIFACTS``
(the GitHub workflow uploads that folder) or, when it is not set, to pytest's temporary folder.
"""
from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest
from PIL import Image
from playwright.sync_api import BrowserContext, Page, sync_playwright

from neuromancer.trainers.lightning import LitTrainer

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CHROMIUM = Path("/usr/bin/chromium")
# Without the flags that stop Chromium's own background traffic, its connections to the outside
# are refused on a closed network and logged as errors.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGE_TIMEOUT_MS = 30_000

# Each tutorial page (its path in the built site, without ``.html``) and the words its title must hold.
TUTORIALS = {
    "tutorials/Part_1_lightning_basics_tutorial": "Part 1",
    "tutorials/Part_2_lightning_advanced_and_gpu_tutorial": "Part 2",
    "tutorials/part_3": "Part 3",
    "tutorials/other_examples/lightning_nonauto_DeepKoopman": "Koopman",
    "tutorials/other_examples/lightning_cvxpy_layers": "cvxpylayers",
    "tutorials/other_examples/lightning_custom_training_example": "Custom training",
}
TUTORIALS_INDEX = "tutorials/index"

pytestmark = pytest.mark.slow


@dataclass
class PageReport:
    """What the browser saw on one page of the site."""

    url: str
    status: int = 0  # the HTTP status of the page itself
    title: str = ""
    problems: list[str] = field(default_factory=list)  # JavaScript errors, failed requests, broken images
    links: list[str] = field(default_factory=list)  # absolute URLs of every <a href> on the page
    anchors: set[str] = field(default_factory=set)  # the ids a link's #fragment can name


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The HTML site built from the working tree, with warnings and unresolved references as errors."""
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-n", "--keep-going", "-q", "-b", "html",
         "-d", str(out / "doctrees"), str(DOCS), str(out / "html")],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    if build.returncode != 0:
        pytest.fail(f"sphinx-build failed (exit {build.returncode}):\n{build.stderr[-6000:]}", pytrace=False)
    return out / "html"


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves the site's files without logging every request to stderr."""

    def log_message(self, format: str, *args) -> None:
        pass


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    """The site served over HTTP on 127.0.0.1, on a port the system picks (so parallel runs never clash)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[BrowserContext]:
    """Headless Chromium with a fresh profile; a request to any host but 127.0.0.1 is refused."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash .ci/services` (as root) to install Debian's chromium.",
                    pytrace=False)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"), lambda route: route.abort("blockedbyclient"))
        yield context
        context.close()


def read_page(page: Page, url: str) -> PageReport:
    """Open ``url`` and report its problems, its links and its anchors once it and its images have loaded."""
    report = PageReport(url)
    origin = urlsplit(url).netloc

    def on_page_error(error) -> None:
        report.problems.append(f"JavaScript error: {error}")

    def on_console(message) -> None:
        if message.type == "error":
            report.problems.append(f"console error: {message.text}")

    def on_response(response) -> None:
        if response.status >= 400:
            report.problems.append(f"HTTP {response.status} for {response.url}")

    def on_request_failed(request) -> None:
        where = "another site" if urlsplit(request.url).netloc != origin else "the site"
        report.problems.append(f"request to {where} failed ({request.failure}): {request.url}")

    page.on("pageerror", on_page_error)
    page.on("console", on_console)
    page.on("response", on_response)
    page.on("requestfailed", on_request_failed)
    try:
        response = page.goto(url, wait_until="load")
        report.status = response.status if response else 0
        if report.status != 200:
            return report  # a missing page: the links that lead here are reported
        # MathJax typesets after the load event, fetching its fonts and components: wait for it to finish.
        page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
        report.title = page.title()
        broken = page.eval_on_selector_all(
            "img", "images => images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
        report.problems += [f"image did not load: {src}" for src in broken]
        untypeset = page.eval_on_selector_all(".math", "nodes => nodes.filter(n => !n.querySelector('mjx-container'))"
                                                       ".map(n => n.textContent.slice(0, 60))")
        report.problems += [f"formula not typeset: {text}" for text in untypeset]
        report.links = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
        report.anchors = set(page.eval_on_selector_all("[id], a[name]", "nodes => nodes.map(n => n.id || n.name)"))
    finally:
        page.remove_listener("pageerror", on_page_error)
        page.remove_listener("console", on_console)
        page.remove_listener("response", on_response)
        page.remove_listener("requestfailed", on_request_failed)
    return report


@pytest.fixture(scope="module")
def crawl(browser: BrowserContext, base_url: str) -> dict[str, PageReport]:
    """Every HTML page reachable from the index by links, read in the browser: ``{url: report}``."""
    page = browser.new_page()
    reports: dict[str, PageReport] = {}
    queue = [urljoin(base_url, "index.html")]
    while queue:
        url = queue.pop()
        if url in reports:
            continue
        reports[url] = read_page(page, url)
        for link in reports[url].links:
            target = urldefrag(link).url
            if target.startswith(base_url) and target.endswith(".html") and target not in reports:
                queue.append(target)
    page.close()
    return reports


def page_url(base_url: str, name: str) -> str:
    return urljoin(base_url, f"{name}.html")


def test_every_page_loads_without_errors(crawl):
    assert len(crawl) > 20, f"the crawl reached only {sorted(crawl)}"
    # A missing page is reported, with the pages that link to it, by the test of the links.
    problems = {url: report.problems for url, report in crawl.items() if report.problems and report.status == 200}
    assert not problems, "pages with problems:\n" + json.dumps(problems, indent=1)


def test_no_link_leads_to_a_missing_page_file_or_anchor(crawl, base_url, browser):
    broken = []
    files_checked: dict[str, int] = {}
    for url, report in crawl.items():
        for link in report.links:
            target, fragment = urldefrag(link)
            if not target.startswith(base_url):
                continue  # another site: never fetched here (the test runs offline)
            if target in crawl:
                if crawl[target].status != 200:
                    broken.append(f"{url} -> {link}: HTTP {crawl[target].status}")
                elif fragment and fragment not in crawl[target].anchors:
                    broken.append(f"{url} -> {link}: no anchor #{fragment} on that page")
            elif target.endswith(".html"):
                broken.append(f"{url} -> {link}: the page was not read")
            else:  # a download or a source file
                if target not in files_checked:
                    files_checked[target] = browser.request.get(target).status
                if files_checked[target] != 200:
                    broken.append(f"{url} -> {link}: HTTP {files_checked[target]}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def notebook_of(name: str) -> Path | None:
    """The notebook behind the tutorial page ``name``, or None for a page written by hand."""
    path = DOCS / f"{name}.ipynb"
    return path if path.exists() else None


def figures_drawn(notebook: Path) -> tuple[int, int]:
    """(``plt.show()`` calls in the notebook's code, PNG figures among its saved outputs)."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    code = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    shows = sum(source.count("plt.show()") for source in code)
    saved = sum("image/png" in output.get("data", {}) for cell in cells for output in cell.get("outputs", []))
    return shows, saved


def test_every_tutorial_notebook_is_on_the_site():
    notebooks = {path.relative_to(DOCS).with_suffix("").as_posix() for path in (DOCS / "tutorials").rglob("*.ipynb")}
    assert notebooks == {name for name in TUTORIALS if notebook_of(name)}, "update TUTORIALS with the new tutorial"


@pytest.mark.parametrize("name", list(TUTORIALS))
def test_tutorial_page_names_the_tutorial_and_shows_its_figures(name, crawl, base_url, browser):
    report = crawl.get(page_url(base_url, name))
    assert report is not None, f"{name}.html is not reachable from the index"
    assert TUTORIALS[name].lower() in report.title.lower(), f"the title {report.title!r} does not name {name}"
    notebook = notebook_of(name)
    page = browser.new_page()
    page.goto(page_url(base_url, name), wait_until="load")
    shown = page.eval_on_selector_all(".cell_output img" if notebook else "section img",
                                      "images => images.filter(i => i.complete && i.naturalWidth > 0).length")
    page.close()
    if notebook is None:
        assert shown >= 1, f"{name}.html shows no figure"
        return
    shows, saved = figures_drawn(notebook)
    assert saved >= max(shows, 1), (f"{notebook.relative_to(DOCS)} draws {shows} figure(s) (plt.show()) but "
                                    f"its saved outputs hold {saved}: run it and save it with its outputs")
    assert shown == saved, f"{name}.html shows {shown} of the {saved} figures in its notebook"


def test_tutorials_index_has_a_card_with_a_thumbnail_for_each_tutorial(browser, base_url):
    page = browser.new_page()
    page.goto(page_url(base_url, TUTORIALS_INDEX), wait_until="load")
    cards = page.eval_on_selector_all(".tutorial-card", """cards => cards.map(card => ({
        links: Array.from(card.querySelectorAll('a')).map(a => a.href),
        thumbnail: Array.from(card.querySelectorAll('img')).some(i => i.complete && i.naturalWidth > 0),
        text: card.innerText}))""")
    page.close()
    for name in TUTORIALS:
        card = [card for card in cards if page_url(base_url, name) in card["links"]]
        assert len(card) == 1, f"the tutorials' index has {len(card)} cards linking to {name}.html"
        assert card[0]["thumbnail"], f"the card of {name} shows no thumbnail"
        assert len(card[0]["text"].split()) > 5, f"the card of {name} says nothing about it: {card[0]['text']!r}"


def test_search_finds_littrainer(browser, base_url):
    page = browser.new_page()
    page.goto(urljoin(base_url, "search.html?q=LitTrainer"), wait_until="load")
    page.wait_for_selector("#search-results ul.search li a")
    results = page.eval_on_selector_all("#search-results ul.search li a", "links => links.map(a => a.href)")
    page.close()
    assert any(link.endswith("#neuromancer.trainers.lightning.LitTrainer") for link in results), results


def test_littrainer_api_page_lists_every_parameter(browser, base_url):
    page = browser.new_page()
    page.goto(page_url(base_url, "api/training"), wait_until="load")
    shown = page.eval_on_selector_all(
        "dt[id='neuromancer.trainers.lightning.LitTrainer'] em.sig-param",
        "params => params.map(p => (p.querySelector('.n') || p).innerText.trim())")
    page.close()
    expected = list(inspect.signature(LitTrainer).parameters)
    assert [name for name in shown if name.isidentifier()] == expected


def artifacts_folder(tmp_path_factory) -> Path:
    """``$NEUROMANCER_TEST_ARTIFACTS/docs-site``, or a folder of pytest's temporary folder when unset."""
    configured = os.environ.get("NEUROMANCER_TEST_ARTIFACTS")
    if configured:
        folder = Path(configured) / "docs-site"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("docs-site-screenshots")


def test_screenshots_of_the_index_and_a_tutorial(browser, base_url, tmp_path_factory):
    folder = artifacts_folder(tmp_path_factory)
    page = browser.new_page()
    for name in ("index", TUTORIALS_INDEX, "tutorials/Part_1_lightning_basics_tutorial"):
        page.goto(page_url(base_url, name), wait_until="networkidle")
        path = folder / f"{name.replace('/', '-')}.png"
        page.screenshot(path=str(path), full_page=True)
        colours = Image.open(path).convert("L").getextrema()
        assert colours[1] - colours[0] > 100, f"{path} is blank"
        print(f"screenshot: {path}")
    page.close()
