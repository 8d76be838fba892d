"""gradlens's own SVG drawings, and the HTML report drawn without Graphviz, checked in a real browser.

Headless Chromium (Debian's ``chromium``, driven by Playwright pointed at that binary) loads each drawing;
JavaScript then measures what the browser actually laid out (``getBoundingClientRect``,
``getComputedTextLength``, the computed font size times the page's scale): every node is drawn, every
label line lies inside its node's box, no node's box covers another node's label, and all text is at
least 8 px at the default zoom. Screenshots go to the test's output folder;
``GRADLENS_UPDATE_SCREENSHOTS=1`` also refreshes the README's picture ``docs/report-html.png``.

Needs ``pip install playwright`` (never ``playwright install``: the system Chromium is used) and a
``chromium`` binary; skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gradlens.engine as ge
from gradlens.export import to_svg

from ._graphs import nodes, transformer_ish
from .test_dot import mlp_graph, retained_graph

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = next((p for p in (os.environ.get("GRADLENS_CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser"), "/usr/bin/chromium") if p and Path(p).exists()), None)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

# Measures every gradlens drawing on the page; returns counts and a list of problems (empty when tidy).
CHECK = """
() => {
  const out = {svgs: 0, nodes: 0, texts: 0, minFontPx: 1e9, problems: []};
  const inside = (b, box) => b.x >= box.x0 - 0.5 && b.y >= box.y0 - 0.5 &&
      b.x + b.width <= box.x1 + 0.5 && b.y + b.height <= box.y1 + 0.5;
  const meets = (b, box) => b.x < box.x1 && box.x0 < b.x + b.width && b.y < box.y1 && box.y0 < b.y + b.height;
  for (const svg of document.querySelectorAll('svg.gradlens-graph')) {
    out.svgs++;
    const scale = svg.getScreenCTM().a;
    for (const t of svg.querySelectorAll('text')) {
      out.minFontPx = Math.min(out.minFontPx, parseFloat(getComputedStyle(t).fontSize) * scale);
    }
    const items = [...svg.querySelectorAll('g.node')].map(g => {
      // page coordinates (getBoundingClientRect): they include any transform and the page's scale
      const shapes = [...g.children].filter(e => e.tagName === 'rect' || e.tagName === 'path')
          .map(e => e.getBoundingClientRect());
      const box = {x0: Math.min(...shapes.map(b => b.x)), y0: Math.min(...shapes.map(b => b.y)),
                   x1: Math.max(...shapes.map(b => b.x + b.width)), y1: Math.max(...shapes.map(b => b.y + b.height))};
      const texts = [...g.querySelectorAll('text')].map(t => ({b: t.getBoundingClientRect(),
                                                               len: t.getComputedTextLength() * scale,
                                                               s: t.textContent}));
      return {name: g.dataset.node, box, texts};
    });
    for (const it of items) {
      out.nodes++;
      if (!(it.box.x1 > it.box.x0 && it.box.y1 > it.box.y0)) out.problems.push(`node ${it.name}: no box`);
      for (const t of it.texts) {
        out.texts++;
        if (!(t.len > 0)) out.problems.push(`node ${it.name}: "${t.s}" not rendered`);
        if (!inside(t.b, it.box) || t.len > it.box.x1 - it.box.x0)
          out.problems.push(`node ${it.name}: "${t.s}" sticks out of its box`);
      }
    }
    for (const a of items) for (const b of items) {
      if (a === b) continue;
      for (const t of b.texts) if (meets(t.b, a.box))
        out.problems.push(`node ${a.name}'s box covers the label "${t.s}" of node ${b.name}`);
    }
  }
  return out;
}
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install "
                                   "playwright; the system chromium is used, no browser download)")
    if CHROMIUM is None:
        pytest.skip("no chromium binary (apt-get install chromium, or set GRADLENS_CHROMIUM)")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1200, "height": 1600})  # tall: the report's graph box is 80vh high
        try:
            yield context
        finally:
            context.close()


def measure(browser, html: str, shot: Path, docs_name: str | None = None) -> dict:
    page = browser.new_page()
    try:
        page.set_content(html)
        result = page.evaluate(CHECK)
        page.screenshot(path=str(shot), full_page=True)
        if docs_name and os.environ.get("GRADLENS_UPDATE_SCREENSHOTS"):
            page.screenshot(path=str(REPO / "docs" / docs_name), full_page=True)
    finally:
        page.close()
    assert shot.read_bytes()[:4] == b"\x89PNG"
    return result


def page_of(svg: str) -> str:
    return f"<!DOCTYPE html><html><body style='margin:0'>{svg}</body></html>"


@pytest.mark.parametrize("name", ["mlp", "retained", "transformer-folded"])
def test_drawings_render_legibly_without_overlaps(browser, tmp_path, name):
    g = {"mlp": lambda: mlp_graph(ge), "retained": lambda: retained_graph(ge),
         "transformer-folded": lambda: transformer_ish(12)}[name]()
    svg = to_svg(g)
    if name == "transformer-folded":
        assert "repeated block (x" in svg  # above 300 nodes, folded by default
    result = measure(browser, page_of(svg), tmp_path / f"{name}.png")
    assert result["svgs"] == 1 and result["nodes"] == svg.count('<g class="node"')
    assert result["texts"] >= result["nodes"]
    assert result["problems"] == []
    assert result["minFontPx"] >= 8


def test_the_checks_catch_an_overlap(browser, tmp_path):
    """The browser check itself fails on a drawing where one node is moved onto another's label."""
    svg = to_svg(mlp_graph(ge), legend=False)
    drawn = nodes(svg)
    (ax, ay, _, _), (bx, by, _, _) = drawn[0]["box"], drawn[1]["box"]
    start = svg.index('<g class="node"', svg.index('<g class="node"') + 1)
    end = svg.index("</g>", start) + len("</g>")
    moved = (svg[:start] + f'<g transform="translate({ax - bx + 10:.1f},{ay - by:.1f})">' + svg[start:end] + "</g>"
             + svg[end:])
    result = measure(browser, page_of(moved), tmp_path / "overlap.png")
    assert any("covers the label" in p for p in result["problems"])
    assert measure(browser, page_of(svg), tmp_path / "tidy.png")["problems"] == []


def test_the_html_report_shows_the_drawing_without_graphviz(browser, tmp_path):
    """`gradlens report --format html` on the README's example, with no `dot` on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bin_dir)}
    out = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "gradlens", "report", "--format", "html", "-o", str(out),
                           "examples/loss_history_bug.py"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert out.exists(), done.stderr
    html = out.read_text()
    assert 'class="gradlens-graph"' in html and "digraph gradlens" not in html
    assert "Traceback" not in done.stderr
    result = measure(browser, html, tmp_path / "report.png", docs_name="report-html.png")
    assert result["svgs"] >= 1 and result["nodes"] > 10
    assert result["problems"] == []
    assert result["minFontPx"] >= 8
