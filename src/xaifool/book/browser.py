"""The built book read in a real browser: every page opened in headless Chromium (Debian's
``chromium`` and ``chromium-driver``, driven by selenium; nothing is downloaded), served from a
local HTTP server as a web host would serve it.

:func:`check_book` reports, page by page, what a reader would trip over:

- console errors (severe entries of the browser's log);
- images that did not load;
- raw TeX: ``$…$`` or ``\\(…\\)`` left in the text after MathJax has run (code excluded);
- cell outputs that hold a traceback or a warning;
- figures shown at less than :data:`MIN_SCALE` of their natural width at a 1280 px window (a
  figure drawn for a wider page, its text too small to read);
- internal links and anchors that do not resolve (read from the HTML files themselves);
- a search for a term from a chapter that finds nothing.

It also saves screenshots of the pages named in ``screenshots``.
"""
from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["MIN_SCALE", "WIDTH", "browser_available", "broken_links", "check_book"]

#: smallest accepted ratio of a figure's shown width to its natural width
MIN_SCALE = 0.6
#: window width the pages are read at
WIDTH = 1280
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver",)


def _first(paths):
    return next((p for p in paths if Path(p).is_file()), None) or next(
        (w for p in paths if (w := shutil.which(Path(p).name))), None)


def browser_available() -> str | None:
    """None when Chromium, its driver and selenium are installed, else what is missing."""
    missing = [name for name, paths in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if not _first(paths)]
    try:
        import selenium  # noqa: F401
    except ModuleNotFoundError:
        missing.append("selenium")
    return ", ".join(missing) or None


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.hrefs = set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text("utf8", errors="replace"))
    return p


def broken_links(html_dir: Path | str) -> dict[str, list[str]]:
    """Page → internal links of it that lead nowhere (a missing file, or an anchor the target lacks)."""
    html_dir = Path(html_dir).resolve()
    _parse.cache_clear()
    out: dict[str, list[str]] = {}
    for page in sorted(html_dir.rglob("*.html")):
        bad = []
        for href in _parse(page).hrefs:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:", "data:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                bad.append(href)
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _parse(target).ids:
                bad.append(href)
        if bad:
            out[page.relative_to(html_dir).as_posix()] = sorted(set(bad))
    return out


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(html_dir: Path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_Quiet, directory=str(html_dir)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = _first(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", f"--window-size={WIDTH},1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(executable_path=_first(CHROMEDRIVER)))


# Everything read inside the page, once MathJax has typeset it and every image has been scrolled to.
_READ_PAGE = r"""
const done = arguments[arguments.length - 1];
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const imgs = [...document.querySelectorAll('article img, main img')];
  for (const img of imgs) { img.loading = 'eager'; img.scrollIntoView(); }
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  window.scrollTo(0, 0);
  const main = document.querySelector('main') || document.body;
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-container, .highlight, textarea').forEach(e => e.remove());
  const text = clone.textContent;
  const raw = (text.match(/\$[^$\n]{1,80}\$|\\\([^\n]{1,80}?\\\)/g) || []).slice(0, 5);
  const outputs = [...document.querySelectorAll('.cell_output, .output')];
  const bad_out = outputs.filter(o => o.querySelector('.stderr, .traceback') ||
      /Traceback \(most recent call last\)|\b\w*Warning: /.test(o.textContent))
      .map(o => o.textContent.trim().slice(0, 160));
  const figs = imgs.filter(i => i.naturalWidth > 0 && i.closest('.cell_output, figure, .figure'))
      .map(i => ({src: i.getAttribute('src'), natural: i.naturalWidth,
                  shown: Math.round(i.getBoundingClientRect().width)}));
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'));
  done({raw, bad_out, figs, broken});
})();
"""


def _search(driver, base: str, term: str, timeout: float = 15) -> int:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base}/search.html?q={term}")

    def hits(d):
        n = d.execute_script("return document.querySelectorAll('#search-results ul.search li').length")
        status = d.execute_script("const s = document.querySelector('#search-results p.search-summary');"
                                  "return s ? s.textContent : ''")
        return n if (n or status) else False

    try:
        return int(WebDriverWait(driver, timeout).until(hits))
    except Exception:  # timed out: nothing found
        return 0


def check_book(html_dir: Path | str, *, search_term: str = "Dombrowski", screenshots: dict | None = None,
               screenshot_dir: Path | str | None = None, min_scale: float = MIN_SCALE) -> dict:
    """Open every page of the built book at ``html_dir`` in headless Chromium and report what is
    wrong (see the module's text). Returns ``{"pages": n, "problems": {page: [text, ...]},
    "search_hits": n, "figures": [...], "screenshots": [paths]}``; no problems means the book
    passed. ``screenshots`` maps a page (``book/intro.html``) to a file name saved in ``screenshot_dir``."""
    html_dir = Path(html_dir).resolve()
    if not (html_dir / "index.html").is_file():
        raise ValueError(f"html_dir must be a built book (with index.html), got {str(html_dir)!r}")
    if not (0 < min_scale <= 1):
        raise ValueError(f"min_scale must lie in (0, 1], got {min_scale!r}")
    missing = browser_available()
    if missing:
        raise RuntimeError(f"the browser check needs {missing} (Debian: apt-get install chromium chromium-driver; "
                           "pip install selenium)")
    pages = sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
                   if not p.relative_to(html_dir).parts[0].startswith("_") and p.name not in ("search.html",))
    problems: dict[str, list[str]] = {page: [f"broken link {h}" for h in hrefs]
                                      for page, hrefs in broken_links(html_dir).items()}
    figures, shots = [], []
    server = _serve(html_dir)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    driver = _driver()
    try:
        driver.set_script_timeout(60)
        for page in pages:
            driver.get(f"{base}/{page}")
            got = driver.execute_async_script(_READ_PAGE)
            found = problems.setdefault(page, [])
            found += [f"image not loaded: {s}" for s in got["broken"]]
            found += [f"raw TeX: {r}" for r in got["raw"]]
            found += [f"traceback or warning in an output: {o}" for o in got["bad_out"]]
            for f in got["figs"]:
                f["page"], f["scale"] = page, round(f["shown"] / f["natural"], 3)
                figures.append(f)
                if f["scale"] < min_scale:
                    found.append(f"figure shown at {f['scale']:.0%} of its natural width "
                                 f"({f['shown']} of {f['natural']} px): {f['src']}")
            if screenshots and page in screenshots and screenshot_dir is not None:
                out = Path(screenshot_dir) / screenshots[page]
                out.parent.mkdir(parents=True, exist_ok=True)
                height = driver.execute_script("return document.body.scrollHeight")
                driver.set_window_size(WIDTH, min(int(height), 4000))
                driver.save_screenshot(str(out))
                driver.set_window_size(WIDTH, 1000)
                shots.append(str(out))
            # leave the page before reading its console, so that a late message (an image's 404)
            # is filed under the page that caused it, not the next one
            driver.get("about:blank")
            found += [f"console: {e['message'][:200]}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        hits = _search(driver, base, search_term)
        driver.get_log("browser")
        if not hits:
            problems.setdefault("search.html", []).append(f"searching {search_term!r} finds nothing")
    finally:
        driver.quit()
        server.shutdown()
    problems = {p: v for p, v in problems.items() if v}
    if screenshot_dir is not None:
        (Path(screenshot_dir) / "browser-check.json").write_text(json.dumps(
            {"pages": len(pages), "problems": problems, "search_hits": hits, "figures": figures}, indent=1))
    return {"pages": len(pages), "problems": problems, "search_hits": hits, "figures": figures, "screenshots": shots}
