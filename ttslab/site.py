"""`ttslab site`: the companion site, a static HTML site of the README, the executed notebooks and paper_figures/.

    ttslab site [--out build/site] [--executed DIR] [--no-execute] [--check]

Built with Sphinx + MyST-NB + sphinx-book-theme (the Jupyter Book 1 stack, pip-installable and fully
offline). Jupyter Book 2 / `mystmd` was the first choice but its HTML themes are not published on any
package registry: `myst build --html` downloads the book theme from the web at build time, which fails on
a machine that only reaches PyPI/npm. The Sphinx config lives here (`SPHINX_CONFIG`) and is written into
the build folder with the staged sources, so the repository needs no docs/ folder:

    <out>/src/        staged sources: index.md (from README.md), notebooks/*.ipynb (executed),
                      paper_figures/ (the files plus an index page), conf.py
    <out>/html/       the site: plain files, deployable as is (GitHub Pages: .nojekyll is written)
    <out>/exec/       working directory of the notebook kernels (run directories of notebooks 00/01)
    <out>/screenshots one PNG per page, written by `--check` and by tests/test_site.py

Notebooks are stored without outputs. Each one is executed (nbclient, the notebook's default
parameters) unless an executed copy newer than the source is already in the executed folder
(`--executed`, default build/executed/, also set by TTSLAB_EXECUTED_DIR), e.g. one written earlier in the
same CI run; copies the builder executes are saved there too, so a rebuild re-executes only what changed.
Notebooks that load the GGUF model run under the machine's model lock (TTSLAB_MODEL_LOCK, default
<tempdir>/ttslab-model.lock), so they never share the cores with another model process.
"""

from __future__ import annotations

import argparse
import contextlib
import html.parser
import os
import posixpath
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

from ttslab.errors import InputError, RunFailed

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "build" / "site"
DEFAULT_EXECUTED = REPO / "build" / "executed"
# notebooks that load the GGUF model (by their reading-order number)
MODEL_NOTEBOOKS = ("00", "01")
CELL_TIMEOUT_S = 3600
CHROMIUM = "/usr/bin/chromium"  # Debian's package; Playwright never downloads a browser here
# Chromium on a machine with no network beyond loopback: no background connections, no sandbox as root
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

SPHINX_CONFIG = {
    "project": "ttslab",
    "author": "the ttslab authors",
    "copyright": "the ttslab authors (MIT)",
    "html_title": "ttslab: test-time scaling, rebuilt",
    "extensions": ["myst_nb", "sphinx.ext.githubpages"],
    "exclude_patterns": ["_build", "**.ipynb_checkpoints"],
    "nb_execution_mode": "off",  # executed before staging (see module docstring)
    "nb_merge_streams": True,
    "myst_enable_extensions": ["colon_fence", "dollarmath"],
    "myst_heading_anchors": 3,  # README's [..](#running-on-gpus) links
    "html_theme": "sphinx_book_theme",
    "html_theme_options": {"home_page_in_toc": True, "show_toc_level": 2, "use_download_button": True},
    "html_context": {"default_mode": "auto"},  # the theme logs a console error on a first visit without it
    "html_static_path": ["_static"],
    "html_favicon": "_static/favicon.svg",  # without an icon browsers ask for /favicon.ico: a 404
    "html_css_files": ["ttslab.css"],
    "html_show_sourcelink": False,
}
FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
           'fill="#1f4e79"/><path d="M3 12 L6 7 L9 9 L13 3" stroke="#fff" stroke-width="1.8" fill="none"/></svg>')

# the notebooks' result tables are wide: let the article use the page width instead of the theme's ~45 em
CSS = """.bd-page-width { max-width: 96rem; }
.bd-main .bd-content .bd-article-container { max-width: 100%; }
"""


# ---------------------------------------------------------------------------------------------------- build


def notebooks(repo: Path = REPO) -> list[Path]:
    """The reading-order notebooks NN_*.ipynb (07 included once it exists)."""
    return sorted((repo / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@contextlib.contextmanager
def model_lock() -> Iterator[None]:
    """flock(2) on the same file as `flock /tmp/ttslab-model.lock cmd`: one model process at a time."""
    import fcntl

    path = Path(os.environ.get("TTSLAB_MODEL_LOCK") or Path(tempfile.gettempdir()) / "ttslab-model.lock")
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def executed_copy(source: Path, executed_dir: Path) -> Path | None:
    """An executed copy of `source` in `executed_dir` that is newer than the source, or None."""
    copy = executed_dir / source.name
    if copy.exists() and copy.stat().st_mtime >= source.stat().st_mtime:
        return copy
    return None


def execute_notebook(source: Path, dest: Path, cwd: Path, log=print) -> None:
    """Run `source` top to bottom with its default parameters (nbclient) and write it to `dest`."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(source, as_version=4)
    cwd.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    lock = model_lock() if source.name[:2] in MODEL_NOTEBOOKS else contextlib.nullcontext()
    with lock:
        t0 = time.perf_counter()  # the wait for the lock is not the notebook's time
        try:
            client.execute()
        except CellExecutionError as e:
            raise RunFailed(f"{source}: a cell failed while building the site:\n{e}") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(dest)  # a killed build never leaves a half-written copy that looks newer than its source
    log(f"executed {source.name} in {time.perf_counter() - t0:.0f} s")


def _write_if_changed(path: Path, data: bytes) -> None:
    """Sphinx rebuilds what changed by mtime: leave identical files alone. Written whole, never through a link."""
    from ttslab.writes import check_writable_name, read_regular, write_atomic

    check_writable_name(path)
    if path.exists() and read_regular(path) == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)


MANIFEST = ".ttslab-site-manifest.json"  # in <out>/src: the files the last build staged, relative to src


def _manifest(src: Path) -> set[str]:
    import json

    from ttslab.writes import read_regular

    path = src / MANIFEST
    if not path.exists() and not path.is_symlink():
        return set()
    try:
        names = json.loads(read_regular(path).decode("utf-8"))
        assert isinstance(names, list) and all(isinstance(n, str) for n in names)
    except (ValueError, AssertionError):
        raise InputError(f"{path}: not the manifest `ttslab site` writes; delete {src} (or choose another "
                         "--out) and build again") from None
    # only plain relative names inside src: a hand-edited manifest cannot point elsewhere
    return {n for n in names if n and not n.startswith("/") and ".." not in Path(n).parts}


_LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)\s]+)\)")


def rewrite_links(text: str, doc_dir: str = "") -> str:
    """Markdown links of a document at `doc_dir` (repository-relative) made valid on the site.

    The site holds README.md (as index.md), notebooks/*.ipynb and paper_figures/ (README.md as index.md)
    at their repository places. Links to those stay (README -> index), links to other repository files
    lose their link and keep their text (the site does not carry them); URLs and #anchors stay.
    """

    def link(m: re.Match) -> str:
        label, target = m.group(1), m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return m.group(0)
        path, _, frag = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(doc_dir, path)) if path else doc_dir
        if repo_path in ("README.md", "."):
            site_path = "index.md"
        elif repo_path in ("paper_figures", "paper_figures/README.md"):
            site_path = "paper_figures/index.md"
        elif (repo_path.startswith("notebooks/") and repo_path.endswith(".ipynb")
              or repo_path.startswith("paper_figures/")):
            site_path = repo_path
        else:
            return label
        rel = posixpath.relpath(site_path, doc_dir or ".")
        return f"[{label}]({rel}{'#' + frag if frag else ''})"

    return _LINK.sub(link, text)


def rewrite_readme(text: str, notebook_stems: list[str]) -> str:
    """README.md as the site's front page: `rewrite_links`, and the notebook table's `NN_x` names as links."""
    text = rewrite_links(text)
    for stem in notebook_stems:
        text = re.sub(rf"(?<!\[)`{re.escape(stem)}`(?!\])", f"[`{stem}`](notebooks/{stem}.ipynb)", text)
    return text


def rewrite_notebook(data: bytes) -> bytes:
    """An executed notebook with its markdown cells' links made valid on the site (`rewrite_links`)."""
    import nbformat

    nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            new = rewrite_links(cell.source, "notebooks")
            changed |= new != cell.source
            cell.source = new
    return nbformat.writes(nb).encode("utf-8") if changed else data


def figures_page(readme: str, pngs: list[str]) -> str:
    """paper_figures/README.md followed by every PNG, captioned with its row of the README's table."""
    lines = [readme.rstrip(), "", "## Gallery", ""]
    rows = {}
    for line in readme.splitlines():
        for name in pngs:
            if f"({name})" in line and line.lstrip().startswith("|"):
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                rows[name] = " · ".join(c for c in cells[1:] if c and c != "-")
    order = sorted(pngs, key=lambda n: (readme.find(f"({n})") < 0, readme.find(f"({n})"), n))
    for name in order:
        stem = name[: -len(".png")]
        caption = rows.get(name) or stem
        lines += [f"### {stem}", "", f":::{{figure}} {name}", f":alt: {stem}", "", caption, ":::", ""]
    return "\n".join(lines) + "\n"


def stage(src: Path, executed: dict[str, Path], repo: Path = REPO) -> None:
    """Write the Sphinx source tree: conf.py, index.md, notebooks/, paper_figures/."""
    import json

    from ttslab.writes import read_regular, write_atomic

    conf = "".join(f"{k} = {v!r}\n" for k, v in SPHINX_CONFIG.items()).encode()
    before = _manifest(src)
    if not before and (src / "conf.py").is_file() and not (src / "conf.py").is_symlink() \
            and (src / "conf.py").read_bytes() == conf:  # a build from before the manifest: its files are ours
        before = {str(p.relative_to(src)) for p in src.rglob("*") if p.is_file() and not p.is_symlink()}
    wanted: set[str] = set()

    def put(rel: str, data: bytes) -> None:
        dest = src / rel
        if rel not in before and (dest.exists() or dest.is_symlink()) and (
                not dest.is_file() or dest.is_symlink() or read_regular(dest) != data):
            raise InputError(f"{dest} exists and was not written by `ttslab site` (not in {src / MANIFEST}); "
                             "ttslab site never overwrites what it did not make: choose an empty --out, or move "
                             "that file away")
        _write_if_changed(dest, data)
        wanted.add(rel)

    put("conf.py", conf)
    put("_static/favicon.svg", FAVICON.encode())
    put("_static/ttslab.css", CSS.encode())
    stems = [Path(n).stem for n in executed]
    index = rewrite_readme((repo / "README.md").read_text(encoding="utf-8"), stems)
    toc = ["", "```{toctree}", ":caption: Notebooks", ":maxdepth: 1", "", *[f"notebooks/{s}" for s in stems],
           "```", "", "```{toctree}", ":caption: Figures", ":maxdepth: 1", "", "paper_figures/index", "```", ""]
    put("index.md", (index.rstrip() + "\n" + "\n".join(toc)).encode())
    for name, path in executed.items():
        put(f"notebooks/{name}", rewrite_notebook(path.read_bytes()))
    figs = repo / "paper_figures"
    pngs = sorted(p.name for p in figs.glob("*.png"))
    for p in sorted(figs.iterdir()):
        if p.suffix in (".png", ".pdf", ".svg"):
            put(f"paper_figures/{p.name}", p.read_bytes())
    readme = (figs / "README.md").read_text(encoding="utf-8") if (figs / "README.md").exists() else "# paper_figures\n"
    put("paper_figures/index.md", figures_page(readme, pngs).encode())
    write_atomic(src / MANIFEST, json.dumps(sorted(wanted), indent=0))
    # files an earlier build staged that are gone now: only names of its own manifest, never anything else
    for rel in sorted(before - wanted, reverse=True):
        stale = src / rel
        if stale.is_symlink() or stale.is_file():
            stale.unlink()
        for parent in stale.parents:  # the folders it made, once empty
            if parent == src or src not in parent.parents:
                break
            with contextlib.suppress(OSError):
                parent.rmdir()


def prepare(out: Path = DEFAULT_OUT, executed_dir: Path | None = None, execute: bool = True,
            repo: Path = REPO, log=print) -> dict[str, Path]:
    """An executed copy of every notebook (reused when newer than the source, else executed and saved)."""
    executed_dir = Path(executed_dir or os.environ.get("TTSLAB_EXECUTED_DIR") or DEFAULT_EXECUTED).resolve()
    sources = notebooks(repo)
    if not sources:
        raise InputError(f"{repo / 'notebooks'}: no NN_*.ipynb notebooks to publish")
    executed: dict[str, Path] = {}
    # notebooks that need no model first: a failure there shows before the model lock is waited for
    for nb in sorted(sources, key=lambda p: p.name[:2] in MODEL_NOTEBOOKS):
        copy = executed_copy(nb, executed_dir)
        if copy is None:
            if not execute:
                raise InputError(f"{nb.name}: no executed copy newer than the source in {executed_dir} "
                                 "(drop --no-execute to execute it)")
            copy = executed_dir / nb.name
            execute_notebook(nb, copy, cwd=Path(out).resolve() / "exec" / "notebooks", log=log)
        else:
            log(f"reusing {copy}")
        executed[nb.name] = copy
    return {nb.name: executed[nb.name] for nb in sources}


def build(out: Path = DEFAULT_OUT, executed_dir: Path | None = None, execute: bool = True,
          repo: Path = REPO, log=print) -> Path:
    """Build the site into `out`; returns the HTML folder (out/html)."""
    out = Path(out).resolve()
    executed = prepare(out, executed_dir, execute, repo, log)
    stage(out / "src", executed, repo)
    t0 = time.perf_counter()
    html_dir = out / "html"
    # -E: read every document each time (a few seconds), so a warning is never hidden by an incremental build
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going", "-E", "-d", str(out / "doctrees"),
           str(out / "src"), str(html_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RunFailed(f"sphinx-build failed (exit {proc.returncode}):\n{proc.stderr.strip() or proc.stdout}")
    log(f"sphinx-build: {time.perf_counter() - t0:.0f} s -> {html_dir}")
    return html_dir


# ---------------------------------------------------------------------------------------------------- check


@dataclass
class PageReport:
    """What the browser saw on one page."""

    page: str
    console_errors: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    broken_links: list[str] = field(default_factory=list)
    images: int = 0
    links: int = 0
    screenshot: Path | None = None

    @property
    def problems(self) -> list[str]:
        return ([f"console: {m}" for m in self.console_errors] + [f"image: {m}" for m in self.broken_images]
                + [f"link: {m}" for m in self.broken_links])


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("id", "name") and v:
                self.ids.add(v)


def pages(html_dir: Path) -> list[str]:
    """Every HTML page of the site, as paths relative to its root (Sphinx's own folders excluded)."""
    skip = ("_static", "_sources", "_downloads", "_images", ".doctrees")
    return sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
                  if not p.relative_to(html_dir).parts[0] in skip)


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    """A local HTTP server over `root` on a free loopback port; yields its base URL."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _target_ok(root: Path, base: str, url: str, ids_cache: dict[Path, set[str]]) -> bool:
    """An internal URL resolves: the file exists under root, and its #fragment names an element there."""
    u, frag = urldefrag(url)
    path = unquote(urlsplit(u).path)[len(urlsplit(base).path):]
    target = root / path
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return False
    if frag and target.suffix == ".html":
        if target not in ids_cache:
            parser = _Ids()
            parser.feed(target.read_text(encoding="utf-8", errors="replace"))
            ids_cache[target] = parser.ids
        return unquote(frag) in ids_cache[target]
    return True


_IMAGES_JS = """async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  return imgs.map(i => [i.currentSrc || i.src, i.complete, i.naturalWidth]);
}"""


def check_site(html_dir: Path, screenshot_dir: Path | None = None, chromium: str = CHROMIUM,
               only: list[str] | None = None) -> list[PageReport]:
    """Open every page in headless Chromium over HTTP: console errors, images, internal links, a screenshot."""
    from playwright.sync_api import sync_playwright

    html_dir = Path(html_dir).resolve()
    if screenshot_dir is not None:
        screenshot_dir.mkdir(parents=True, exist_ok=True)
    reports: list[PageReport] = []
    ids_cache: dict[Path, set[str]] = {}
    with serve(html_dir) as base, sync_playwright() as pw:
        # Playwright gives the browser a fresh empty profile of its own
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            for rel in only or pages(html_dir):
                rep = PageReport(rel)
                page = ctx.new_page()
                page.on("console", lambda m, rep=rep: rep.console_errors.append(f"{m.text} ({m.location.get('url', '')})")
                        if m.type == "error" else None)
                page.on("pageerror", lambda e, rep=rep: rep.console_errors.append(f"uncaught: {e}"))
                page.on("requestfailed", lambda r, rep=rep: rep.console_errors.append(
                    f"request failed: {r.url} ({r.failure})"))
                resp = page.goto(base + rel, wait_until="load")
                if resp is None or resp.status != 200:
                    rep.console_errors.append(f"HTTP {None if resp is None else resp.status} for {rel}")
                images = page.evaluate(_IMAGES_JS)
                rep.images = len(images)
                rep.broken_images = [src for src, complete, width in images if not complete or width == 0]
                hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
                internal = sorted({h for h in hrefs if h.startswith(base)})
                rep.links = len(internal)
                rep.broken_links = [h[len(base):] for h in internal if not _target_ok(html_dir, base, h, ids_cache)]
                page.wait_for_load_state("networkidle")
                if screenshot_dir is not None:
                    rep.screenshot = screenshot_dir / (rel.replace("/", "__").removesuffix(".html") + ".png")
                    page.screenshot(path=str(rep.screenshot), full_page=True)
                page.close()
                reports.append(rep)
        finally:
            browser.close()
    return reports


# ---------------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ttslab site", description="Build the companion site (static HTML).")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="build folder (default: build/site)")
    ap.add_argument("--executed", type=Path, default=None,
                    help="folder of executed notebooks to reuse when newer than the source (default: build/executed)")
    ap.add_argument("--no-execute", action="store_true", help="fail instead of executing a notebook")
    ap.add_argument("--check", action="store_true",
                    help="then open every page in headless Chromium (console errors, images, links, screenshots)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        html_dir = build(args.out, args.executed, execute=not args.no_execute)
    except (InputError, RunFailed) as e:
        print(f"ttslab site: {e}", file=sys.stderr)
        return e.exit_code
    print(f"site built in {time.perf_counter() - t0:.0f} s: {html_dir}/index.html "
          f"(serve it with: python -m http.server -d {html_dir})")
    if args.check:
        if not Path(CHROMIUM).exists():
            print(f"ttslab site --check: {CHROMIUM} not found (Debian: apt-get install chromium)", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        reports = check_site(html_dir, Path(args.out) / "screenshots")
        bad = [r for r in reports if r.problems]
        for r in bad:
            for p in r.problems:
                print(f"{r.page}: {p}", file=sys.stderr)
        print(f"checked {len(reports)} pages in {time.perf_counter() - t0:.0f} s: "
              f"{len(bad)} with problems; screenshots in {Path(args.out) / 'screenshots'}")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
