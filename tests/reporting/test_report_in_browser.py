"""The report as a reader sees it: opened in headless Chromium, its sections rendered and every figure
loaded. tests/run installs Debian's chromium where it is missing; without one the test fails (not skips):
CI must run it, as the integration tests must have their data."""

from __future__ import annotations

import json

import pytest

from docs.headless_chromium import evaluate, find_browser
from ecgtune.cli import main



@pytest.fixture(autouse=True)
def browser():
    if find_browser() is None:
        pytest.fail("no Chromium on PATH: run the tests with `bash tests/run`, which installs Debian's chromium "
                    "(apt-get as root), or install it yourself")

READ_PAGE = """JSON.stringify({
  headings: [...document.querySelectorAll('h1, h2, h3, h4')].map(h => h.textContent),
  tables: document.querySelectorAll('table').length,
  rows: [...document.querySelectorAll('table.patients tr')].map(r => r.innerText),
  images: [...document.images].map(i => ({src: i.getAttribute('src'), complete: i.complete,
                                          width: i.naturalWidth, shown: i.getBoundingClientRect().width})),
})"""


def test_the_report_renders_its_sections_and_every_figure_loads(report_store, tmp_path, capsys):
    uri, _ = report_store
    out = tmp_path / "report"
    assert main(["report", "--space", "demo", "--smoke-test", "--mlflow-uri", uri, "--out", str(out)]) == 0
    capsys.readouterr()

    page = json.loads(evaluate((out / "index.html").resolve().as_uri(), READ_PAGE))
    headings = page["headings"]
    assert headings[:2] == ["ecgtune report", "demo-smoke"]
    assert "Scratch vs fine-tuned per patient" in headings and "The search per unit" in headings
    assert {"demo/pretrain-cnn", "demo/scratch-cnn-100", "demo/finetune-cnn-100"} <= set(headings)
    assert page["tables"] == 2  # the units, the patients
    assert any("100" in r and "+0.1500" in r for r in page["rows"])

    images = page["images"]
    written = sorted(p.name for p in out.glob("*.png"))
    assert sorted(i["src"] for i in images) == written  # every figure written is on the page, once
    broken = [i["src"] for i in images if not (i["complete"] and i["width"] > 0 and i["shown"] > 0)]
    assert not broken, f"figures that did not load: {broken}"
