"""``bench report --html``: one self-contained page with every section, checked in a real browser
(headless Chromium, Debian's ``chromium``): rendered to a PNG, every section there, no broken image."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.report.html import SECTIONS
from bench.report.render import render_report
from bench.store import record_path, write_json_atomically

from helpers import seq_record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def page(tmp_path: Path) -> Path:
    """A results folder of a few trials (one trained, with a curve; one failed) as an HTML page."""
    records = [seq_record("popularity", 50, 0.01), seq_record("text_prompt", 50, 0.05, strategy="lora")]
    trained = seq_record("dual_encoder", 50, 0.1)
    trained["training"] = {"valid_metric": "recall@10", "stopped": "steps", "best_step": 200, "still_rising": False,
                           "examples_seen": 640, "curve": [{"step": s, "seconds": 2.0 * s, "valid": {"recall@10": v}}
                                                           for s, v in ((100, 0.05), (200, 0.09))]}
    failed = {**seq_record("userllm", 50, 0.0), "status": "failed", "error": {"message": "boom"}}
    for rec in (*records, trained, failed):
        rec["spec"]["label"] = {"popularity": "Popularity"}.get(rec["trial_id"].split("-")[0], rec["spec"]["method"])
        rec["per_example"] = {"test": {"recall@10": [0.0, 1.0] * 5}}
        rec["test_examples"] = "same"
        rec |= {"machine": {"node": "vm", "cpus": 2}, "device": "cpu", "dtype": "float32",
                "versions": {"torch": "2.13.0"}, "sources": {"commit": "abc123"}}
        write_json_atomically(record_path("s", rec["trial_id"], tmp_path / "results"), rec)
    out = render_report(tmp_path / "results", html_dir=tmp_path / "page")
    assert out == f"wrote {tmp_path / 'page' / 'index.html'}"
    return tmp_path / "page" / "index.html"


def test_the_page_is_self_contained_and_has_every_section(page):
    text = page.read_text()
    assert all(f"<section id='{name}'>" in text for name in SECTIONS)
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text  # no network
    assert text.count("src='data:image/png;base64,") == 2  # the curves and the cost/quality plot
    assert "boom" in text and "abc123" in text and "Paper tables" in text


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_chromium_renders_the_page_with_every_section_and_no_broken_image(page):
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    shot = page.parent / "page.png"
    subprocess.run([*browser, "--window-size=1280,2400", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert re.search(r'data-broken-images="0"', dom), "the page's images did not all load"
    assert all(f'<section id="{name}">' in dom for name in SECTIONS)
    assert dom.count("<img") == 2
