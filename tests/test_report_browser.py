"""The HTML report as a reader sees it: rendered by a real headless Chromium (Debian's `chromium` package;
.ci/run installs it), on the report of the shared pipeline run."""
import json
import re
import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH = 1280  # px: a laptop browser window

# Runs in the page once it has loaded; leaves its findings as JSON in <pre id="page-check">
CHECK_SCRIPT = """<script>window.addEventListener('load', () => {
  const page = document.documentElement.clientWidth;
  const out = document.createElement('pre');
  out.id = 'page-check';
  out.textContent = JSON.stringify({
    page_width: page,
    page_scrolls_sideways: document.documentElement.scrollWidth > page,
    backticks: (document.body.innerText.match(/[^\\n]*`[^\\n]*/g) || []).slice(0, 5),
    wide_tables: [...document.querySelectorAll('table')].map((t, i) => [i, t.getBoundingClientRect().right])
                   .filter(([i, right]) => right > page),
    images: document.images.length,
    broken_images: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
    headings: document.querySelectorAll('h2').length,
    toc_links: document.querySelectorAll('nav a[href^="#"]').length,
  });
  document.body.appendChild(out);
});</script>"""


def chromium(*args, user_data_dir):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={user_data_dir}", f"--window-size={WIDTH},900",
                           "--virtual-time-budget=10000", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def page_check(html_path, tmp_path) -> dict:
    """Open a copy of the report with CHECK_SCRIPT added in headless Chromium; its findings."""
    checked = tmp_path / "checked.html"
    checked.write_text(html_path.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    dom = chromium("--dump-dom", checked.as_uri(), user_data_dir=tmp_path / "profile").stdout
    found = re.search(r'<pre id="page-check">(.*?)</pre>', dom, re.S)
    assert found, f"the check script did not run; Chromium returned:\n{dom[:2000]}"
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
                      .replace("&quot;", '"'))


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")
def test_the_html_report_reads_well_in_a_real_browser(pipeline_run, tmp_path):
    workdir, _ = pipeline_run
    report = workdir / "results" / "report" / "report.html"
    page = page_check(report, tmp_path)
    assert page["backticks"] == [], "literal backticks in the page"
    assert page["wide_tables"] == [] and not page["page_scrolls_sideways"], f"wider than {page['page_width']} px"
    assert page["images"] >= 4 and page["broken_images"] == []
    assert page["toc_links"] == page["headings"], "the table of contents links every section"
