"""The report of a tiny run, rendered in headless Chromium: it loads without console
errors, its claims table is an HTML table and every image decodes.

``make test`` installs the Debian package ``chromium`` where it is missing and apt is
available; elsewhere these tests skip and say why.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tmr.config import from_dict
from tmr.report import write_report
from tmr.train import TrainConfig, run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed and could not be: run "
    "`apt-get install chromium` (make test does this where apt is available)")

# Runs first in <head>: records every error event (scripts, failed resource loads, in the
# capture phase) and console.error call, then after "load" writes what it saw, with the
# number of images that decoded (naturalWidth > 0), into an attribute of <body>.
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message ||
  (e.target && (e.target.src || e.target.href)) || "error")), true);
const __err = console.error;
console.error = (...a) => { window.__errors.push(a.join(" ")); __err(...a); };
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  document.body.setAttribute("data-check", JSON.stringify({
    errors: window.__errors, images: imgs.length,
    decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length}));
});
</script>"""

TINY = {"seed": 1, "device": "cpu", "model": {"kind": "cnn", "width": 8},
        "optim": {"steps": 24, "eval_every": 8, "batch_size": 32, "checkpoints": [0, 8]},
        "probe": {"max_samples": 160, "inner_folds": 2, "ridge_grid": [0.01, 1.0]},
        "metrics": {"metrics": ["effective_rank", "twonn", "mi_input", "knn_mi", "separation"],
                    "steps": "checkpoints", "max_samples": 160, "knn_samples": 120}}


def _chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox",
                           "--no-first-run", "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def report_page(rhm_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser_run")
    run(from_dict(TrainConfig, {**TINY, "data_path": str(rhm_file)}), out)
    page, _ = write_report(out)
    return page


@pytest.fixture(scope="module")
def rendered(report_page: Path) -> tuple[str, str]:
    """(DOM after load, chromium's stderr) of the report with :data:`PROBE` injected."""
    probed = report_page.with_name("report_probed.html")
    probed.write_text(report_page.read_text().replace("<head>", "<head>" + PROBE, 1))
    res = _chromium("--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout, res.stderr


def _check(dom: str) -> dict[str, object]:
    found = re.search(r'data-check="([^"]*)"', dom)
    assert found, "the probe script did not run: the page did not finish loading"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_report_loads_without_console_errors(rendered: tuple[str, str]) -> None:
    dom, stderr = rendered
    assert _check(dom)["errors"] == []
    # chromium logs every console message of the page as a CONSOLE line (console.error
    # and uncaught exceptions alike, at INFO level); the report writes none at all
    assert [ln for ln in stderr.splitlines() if "CONSOLE" in ln] == []


def test_claims_table_is_an_html_table_with_a_verdict_per_claim(rendered: tuple[str, str]
                                                                ) -> None:
    dom, _ = rendered
    table = re.search(r'<table class="claims">.*?</table>', dom, re.S)
    assert table, "no claims <table> in the rendered page"
    assert "<pre" not in dom
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(0), re.S)[1:]  # skip the header row
    assert len(rows) == 5  # the tiny run records the metrics of claims (3)-(7)
    assert all(re.search(r'class="badge (holds|fails|not-testable)"', r) for r in rows)


def test_every_image_decodes(rendered: tuple[str, str]) -> None:
    check = _check(rendered[0])
    assert int(check["images"]) >= 4  # type: ignore[call-overload]
    assert check["decoded"] == check["images"]


def test_screenshot_is_a_png(report_page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    res = _chromium("--hide-scrollbars", "--window-size=1200,1600",
                    f"--screenshot={shot}", report_page.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_header_names_model_data_generator_seed_and_accuracy(rendered: tuple[str, str]
                                                              ) -> None:
    header = re.search(r"<header class=\"run\">(.*?)</header>", rendered[0], re.S)
    assert header, "no run header in the rendered page"
    facts = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", header.group(1), re.S))
    assert {"model", "data file", "generator", "seed", "training", "final accuracy"} <= set(facts)
    assert "n_synonyms=2" in facts["generator"]  # read from the data file (conftest.RHM)
    assert "24 steps" in facts["training"] and "<a href=" in facts["data file"]
