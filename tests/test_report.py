"""`snakemake --report` of a finished tiny run, opened in headless Chromium.

The report is a React app: its results live in a JSON blob and only become page content
after the app's JavaScript runs. So a check on the raw HTML proves nothing about what a
reader sees. The test clicks through the app the way a reader does (menu, category, subcategory,
each figure's view button), waits until the browser has decoded each image, opens each
result's info panel through the global `app` the captions' own `javascript:app.show...`
links call (its caption), and writes what it found into the page; Chromium's --dump-dom
returns that page after the app has run.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e_runs import recorded_run

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_TIMEOUT_S = 240
VIRTUAL_TIME_BUDGET_MS = 120_000
REPORT_TIMEOUT_S = 600
TABLES = ("baseline", "plans", "table1", "table1-findings")

# Runs after the app's scripts (appended at the end of <body>); reports into <pre id=...>.
PROBE_JS = r"""
(async function () {
  const found = {results: [], rows: [], images: {}, captions: {}, downloads: {}, description: "", errors: []};
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  async function until(test, what) {
    for (let i = 0; i < 400; i++) {
      const value = test();
      if (value) return value;
      await sleep(25);
    }
    throw new Error("timed out waiting for " + what);
  }
  window.addEventListener("error", (event) => found.errors.push(String(event.message)));
  const consoleError = console.error;
  console.error = function (...args) { found.errors.push(args.map(String).join(" ")); consoleError(...args); };
  try {
    await until(() => typeof app !== "undefined" && document.querySelector("nav"), "the app");
    found.results = Object.keys(results);
    // a menu entry (category, subcategory, "Workflow") as a reader sees it: its link by text
    const menuLink = (text) => [...document.querySelectorAll("nav li > a")].find(
      (a) => a.querySelector("span") && a.querySelector("span").textContent === text);
    async function click(text) {
      (await until(() => menuLink(text), "the menu entry " + text)).click();
    }
    for (const category of Object.keys(categories)) {
      for (const subcategory of Object.keys(categories[category])) {
        app.setView({navbarMode: "menu"});  // what the breadcrumbs' home button does
        await click(category);
        if (Object.keys(categories[category]).length > 1) await click(subcategory);
        const paths = categories[category][subcategory];
        const rows = await until(() => {
          const trs = [...document.querySelectorAll("nav table tbody tr")];
          return trs.length === paths.length && trs;
        }, "the rows of " + category + "/" + subcategory);
        for (const tr of rows) {
          const label = tr.querySelector("td").textContent;
          const view = tr.querySelector("a[type=button]");
          const path = paths.find((p) => p === label || Object.values(results[p].labels || {}).includes(label));
          if (path !== undefined) found.rows.push([category, subcategory, label, path]);
          if (path === undefined) continue;
          if (results[path].mime_type === "image/png") {
            view.click();
            const img = await until(() => {
              const shown = [...document.images].find((i) => !i.closest("nav") && i.src === results[path].data_uri);
              return shown && shown.complete && shown;
            }, "the image of " + path);
            found.images[path] = {width: img.naturalWidth, height: img.naturalHeight};
          } else {
            found.downloads[path] = view.getAttribute("href");
          }
        }
      }
    }
    for (const path of Object.keys(results)) {
      app.showResultInfo(path);
      const caption = await until(() => {
        const item = [...document.querySelectorAll("nav li")].find((li) => li.className.includes("prose"));
        const crumbs = document.querySelector("nav").textContent;
        return item && crumbs.includes(path) && item.textContent.trim();
      }, "the caption of " + path);
      found.captions[path] = caption;
    }
    app.setView({navbarMode: "menu"});
    await click("Workflow");
    found.description = await until(() => {
      const prose = [...document.querySelectorAll("div.prose")].find((d) => !d.closest("nav"));
      return prose && prose.textContent.trim();
    }, "the workflow description");
  } catch (error) {
    found.errors.push("probe: " + error.message);
  }
  const pre = document.createElement("pre");
  pre.id = "prrmse-probe";
  pre.textContent = JSON.stringify(found);
  document.body.appendChild(pre);
})();
"""


def chromium() -> str | None:
    override = os.environ.get("PRRMSE_CHROMIUM")
    if override:
        return override
    return next(filter(None, (shutil.which(name) for name in CHROMIUM_NAMES)), None)


def require_chromium() -> str:
    found = chromium()
    if found is None:
        reason = "headless Chromium not found (Debian: apt-get install chromium)"
        if os.environ.get("PRRMSE_REQUIRE_CHROMIUM") == "1":
            pytest.fail(reason + "; PRRMSE_REQUIRE_CHROMIUM=1 requires it")
        pytest.skip(reason)
    return found


def probe_report(browser: str, report: Path, workdir: Path) -> dict:
    """Open a copy of `report` with PROBE_JS appended in headless Chromium; what it found."""
    text = report.read_text()
    end = text.rfind("</body>")  # the last one: the bundled libraries hold the string too
    assert end > 0, f"{report}: no </body>"
    probed = workdir / "report-probed.html"
    probed.write_text(f"{text[:end]}<script>{PROBE_JS}</script>\n{text[end:]}")
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-extensions",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--mute-audio",
        f"--user-data-dir={workdir / 'chromium-profile'}",
        f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
        "--dump-dom",
        probed.as_uri(),
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"chromium ran past {CHROMIUM_TIMEOUT_S} s") from exc
    match = re.search(r'<pre id="prrmse-probe">(.*?)</pre>', result.stdout, re.DOTALL)
    assert match, (
        f"the probe left no result (rc {result.returncode}):\n{result.stderr[-3000:]}\n"
        f"{result.stdout[:2000]}"
    )
    return json.loads(html.unescape(match.group(1)))


def csv_from_data_uri(uri: str) -> str:
    head, _, payload = uri.partition(",")
    assert head.startswith("data:text/csv") and head.endswith(";base64"), head
    return base64.b64decode(payload).decode()


@pytest.mark.slow
def test_report_renders_every_figure_and_table(tmp_path):
    browser = require_chromium()
    tiny = recorded_run()
    report = tiny.repo / "results/report.html"
    began = time.perf_counter()
    tiny.snakemake("--report", str(report.relative_to(tiny.repo)), timeout=REPORT_TIMEOUT_S)
    tiny.timings["snakemake --report"] = time.perf_counter() - began
    assert report.stat().st_size > 0

    began = time.perf_counter()
    found = probe_report(browser, report, tmp_path)
    tiny.timings["chromium check"] = time.perf_counter() - began
    print("timings (s):", json.dumps({k: round(v, 1) for k, v in tiny.timings.items()}))
    assert not found["errors"], found["errors"]

    # every result the report holds is listed (one row each), has a caption, and shows:
    # an image the browser decoded, or a download link holding the file's bytes
    rows = {path: (category, label) for category, _, label, path in found["rows"]}
    assert sorted(rows) == sorted(found["results"])
    for path in found["results"]:
        assert len(found["captions"].get(path, "")) > 40, (path, found["captions"].get(path))
        if path.endswith(".png"):
            image = found["images"].get(path)
            assert image and image["width"] > 100 and image["height"] > 100, (path, image)
        elif path.endswith(".csv"):
            assert csv_from_data_uri(found["downloads"][path]) == (tiny.repo / path).read_text()

    # the paper's figures 3-14, each with its own caption, and every table of results/tables
    figures = sorted(p.name for p in (tiny.repo / "results/figures").glob("fig[0-9][0-9].png"))
    assert figures == [f"fig{n:02d}.png" for n in range(3, 15)]
    for name in figures:
        path = f"results/figures/{name}"
        assert rows[path] == ("Figures", f"Fig. {name[3:5]}"), rows.get(path)
        assert f"Figure {int(name[3:5])}" in found["captions"][path], found["captions"][path]
    tables = {p.stem for p in (tiny.repo / "results/tables").glob("*.csv")}
    assert set(TABLES) <= tables
    for stem in tables:
        shown = [f"results/tables/{stem}.{ext}" in rows for ext in ("csv", "md")]
        assert any(shown), f"table {stem} is not in the report"
    assert "PR-RMSE" in found["description"] and "Reuse plan" in found["description"]
