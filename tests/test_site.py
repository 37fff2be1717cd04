"""The companion site (ttslab.site): built with Sphinx + MyST-NB, opened page by page in real headless Chromium.

The browser tests need Debian's chromium (/usr/bin/chromium) and Playwright's Python package (.ci/site.sh
installs both; Playwright never downloads a browser here). The test of the real site is marked `model`:
when no executed copies of notebooks 00/01 are in build/executed/ it executes them, which runs the model.
"""

import os
import time
from pathlib import Path

import pytest

from ttslab import site

REPO = Path(__file__).resolve().parent.parent


def _browser():
    pytest.importorskip("playwright.sync_api", reason='the site check needs pip install -e ".[site]"')
    if not Path(site.CHROMIUM).exists():
        pytest.skip(f"{site.CHROMIUM} not found: apt-get install chromium (.ci/site.sh does)")


# ---------------------------------------------------------------------------------------------- staging


def test_readme_links_become_site_links():
    text = ("See [GPUs](#running-on-gpus), [SGLang](https://docs.sglang.io), [nb](notebooks/02_x.ipynb), "
            "[figs](paper_figures/README.md), [a png](paper_figures/f.png), [conf](conf/config.yaml) and "
            "![img](paper_figures/f.png).\n\n| `02_x` | what |\n| `03_y` | not a notebook |\n")
    out = site.rewrite_readme(text, ["02_x"])
    assert "[GPUs](#running-on-gpus)" in out and "[SGLang](https://docs.sglang.io)" in out
    assert "[nb](notebooks/02_x.ipynb)" in out and "[a png](paper_figures/f.png)" in out
    assert "[figs](paper_figures/index.md)" in out
    assert "[conf]" not in out and "and conf" not in out and " conf and" in out  # a repository file: text only
    assert "![img](paper_figures/f.png)" in out
    assert "| [`02_x`](notebooks/02_x.ipynb) |" in out and "| `03_y` |" in out


def test_notebook_links_into_the_repository_become_site_links():
    # notebook 06 linked ../README.md#running-on-gpus: fine in Jupyter, a dead link on the site until rewritten
    md = ("[GPUs](../README.md#running-on-gpus) [next](03_y.ipynb) [figs](../paper_figures/README.md) "
          "[fig](../paper_figures/a.png) [cfg](../conf/config.yaml) [doc](https://x.org/a.md) [here](#top)")
    out = site.rewrite_links(md, "notebooks")
    assert out == ("[GPUs](../index.md#running-on-gpus) [next](03_y.ipynb) [figs](../paper_figures/index.md) "
                   "[fig](../paper_figures/a.png) cfg [doc](https://x.org/a.md) [here](#top)")
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(md), nbformat.v4.new_code_cell("'../README.md'")])
    staged = nbformat.reads(site.rewrite_notebook(nbformat.writes(nb).encode()).decode(), as_version=4)
    assert staged.cells[0].source == out and staged.cells[1].source == "'../README.md'"  # code is left alone


def test_figures_page_captions_every_png_from_its_readme_row():
    readme = ("# paper_figures\n\n| file | study | from | runs | notes |\n|---|---|---|---|---|\n"
              "| `b` [png](b.png) [pdf](b.pdf) | Figure 4 | runs | `r1` | 16 problems |\n"
              "| `a` [png](a.png) | Table 3 | study's published numbers | - |  |\n")
    page = site.figures_page(readme, ["a.png", "b.png", "c.png"])
    assert page.startswith(readme.rstrip())
    # README order first, then files the README does not list
    assert page.index(":::{figure} b.png") < page.index(":::{figure} a.png") < page.index(":::{figure} c.png")
    assert "Figure 4 · runs · `r1` · 16 problems" in page
    assert "Table 3 · study's published numbers\n" in page


def test_an_executed_copy_is_reused_only_when_newer(tmp_path):
    src = tmp_path / "02_x.ipynb"
    src.write_text("{}")
    executed = tmp_path / "executed"
    assert site.executed_copy(src, executed) is None
    executed.mkdir()
    copy = executed / src.name
    copy.write_text("{}")
    now = time.time()
    os.utime(src, (now, now))
    os.utime(copy, (now - 60, now - 60))
    assert site.executed_copy(src, executed) is None  # the notebook changed after it was executed
    os.utime(copy, (now + 1, now + 1))
    assert site.executed_copy(src, executed) == copy


@pytest.mark.model  # integration tier: slow (see pyproject's markers)
def test_build_executes_then_reuses(tmp_path, monkeypatch):
    """A tiny repository through the real builder: nbclient executes, Sphinx renders, a rebuild reuses."""
    for module in ("sphinx", "myst_nb", "nbclient"):
        pytest.importorskip(module, reason='the site build needs pip install -e ".[site]"')
    import nbformat

    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "paper_figures").mkdir()
    (repo / "README.md").write_text("# demo\n\nThe notebook: `00_demo`.\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Demo"),
                                         nbformat.v4.new_code_cell("print(6 * 7)")])
    nbformat.write(nb, repo / "notebooks" / "00_demo.ipynb")
    logs: list[str] = []
    monkeypatch.setenv("TTSLAB_MODEL_LOCK", str(tmp_path / "model.lock"))  # 00_ takes the model lock: a private one
    html = site.build(tmp_path / "out", tmp_path / "executed", repo=repo, log=logs.append)
    assert any(line.startswith("executed 00_demo.ipynb") for line in logs)
    page = (html / "notebooks" / "00_demo.html").read_text()
    assert "42" in page and "cell_output" in page
    assert 'href="notebooks/00_demo.html"' in (html / "index.html").read_text()
    assert (html / ".nojekyll").exists() and (html / "paper_figures" / "index.html").exists()
    logs.clear()
    site.prepare(tmp_path / "out", tmp_path / "executed", execute=False, repo=repo, log=logs.append)
    assert not any(line.startswith("executed") for line in logs) and any("reusing" in x for x in logs)
    # a changed notebook is stale: without execution the build refuses instead of publishing old output
    later = (tmp_path / "executed" / "00_demo.ipynb").stat().st_mtime + 5
    os.utime(repo / "notebooks" / "00_demo.ipynb", (later, later))
    with pytest.raises(site.InputError, match="no executed copy newer than the source"):
        site.prepare(tmp_path / "out", tmp_path / "executed", execute=False, repo=repo, log=logs.append)
    assert (tmp_path / "model.lock").exists()


# ---------------------------------------------------------------------------------------------- browser


@pytest.mark.model  # integration tier: slow (see pyproject's markers)
def test_the_checker_sees_every_kind_of_breakage(tmp_path):
    _browser()
    root = tmp_path / "html"
    (root / "sub").mkdir(parents=True)
    (root / "_static").mkdir()
    (root / "_static" / "favicon.svg").write_text(site.FAVICON)
    head = '<head><link rel="icon" href="/_static/favicon.svg"></head>'
    (root / "ok.png").write_bytes(_png())
    (root / "index.html").write_text(
        f'<html>{head}<body><h1 id="top">ok</h1><img src="ok.png"><a href="sub/page.html#there">sub</a>'
        '<a href="#top">top</a><a href="https://example.org/x">external, not followed</a></body></html>')
    (root / "sub" / "page.html").write_text(
        f'<html>{head}<body><p id="there">x</p><img src="../missing.png"><img src="../ok.png">'
        '<a href="../index.html#nowhere">bad anchor</a><a href="gone.html">gone</a>'
        '<script>console.error("boom")</script></body></html>')
    reports = {r.page: r for r in site.check_site(root, tmp_path / "shots")}
    assert set(reports) == {"index.html", "sub/page.html"}
    good, bad = reports["index.html"], reports["sub/page.html"]
    assert good.problems == [] and good.images == 1 and good.links == 2
    assert bad.broken_images == [next(u for u in bad.broken_images if u.endswith("/missing.png"))]
    assert sorted(bad.broken_links) == ["index.html#nowhere", "sub/gone.html"]
    assert any("boom" in m for m in bad.console_errors)
    assert any("missing.png" in m for m in bad.console_errors)  # the 404 is logged by the browser too
    for r in reports.values():
        assert r.screenshot.exists() and r.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _png() -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, _ = plt.subplots(figsize=(1, 1), dpi=20)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


@pytest.mark.model
def test_the_companion_site_in_a_browser():
    """Every page of the real site: no console error, every image loaded, every internal link resolves."""
    _browser()
    html = site.build()  # reuses executed notebooks (build/executed/) newer than their sources
    shots = site.DEFAULT_OUT / "screenshots"
    reports = site.check_site(html, shots)
    pages = {r.page: r for r in reports}
    expected = {"index.html", "paper_figures/index.html"} | {
        f"notebooks/{nb.stem}.html" for nb in site.notebooks()}
    assert expected <= set(pages)
    assert {p: r.problems for p, r in pages.items() if r.problems} == {}
    for nb in site.notebooks():  # the notebooks are published executed
        assert "cell_output" in (html / "notebooks" / f"{nb.stem}.html").read_text(), nb.name
    pngs = sorted((REPO / "paper_figures").glob("*.png"))
    assert pages["paper_figures/index.html"].images >= len(pngs) > 0
    assert pages["index.html"].links > 5
    for r in reports:
        assert r.screenshot.stat().st_size > 5_000, r.page
