"""Every notebook runs top to bottom (papermill, real kernel). 00 and 01 run the real model (marked `model`), at
a smaller scale than their defaults through their parameters cell; 02-06 read the shipped study run.
The executed notebooks are checked for what a reader sees: at most two tables each."""

import shutil
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
# smaller than the notebooks' defaults so the suite stays inside CI time; same code paths
PARAMETERS = {
    "00_quickstart.ipynb": {"OVERRIDES": ["dataset.limit=2", "plan.1.max_tokens=160",
                                          "plan.0.max_tokens=160", "plan.2.max_tokens=160", "plan.3.max_tokens=160"]},
}
SLOW = {"00_quickstart.ipynb", "01_methods.ipynb"}  # they load the embedded model
MAX_TABLES = 2


def notebooks():
    return sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def test_the_reading_order_is_complete():
    names = notebooks()
    assert names[:2] == ["00_quickstart.ipynb", "01_methods.ipynb"]
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(len(names))]


def html_tables(nb) -> int:
    """Tables a reader sees in an executed notebook: outputs rendered as an HTML table."""
    return sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "<table" in "".join(out.get("data", {}).get("text/html", ""))
    )


@pytest.mark.model  # integration tier: every notebook executed (00 and 01 also load the model)
@pytest.mark.parametrize("name", notebooks())
def test_notebook_runs(name, tmp_path):
    papermill = pytest.importorskip("papermill", reason='notebook execution needs pip install -e ".[dev]"')
    import nbformat

    params = dict(PARAMETERS.get(name, {}))
    if name in SLOW:
        params["RUN_DIR"] = str(tmp_path / "run")
        pytest.importorskip("llama_cpp", reason="notebooks 00 and 01 run the embedded model")
    out = tmp_path / name
    papermill.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=params, cwd=str(NOTEBOOKS),
                               kernel_name="python3", progress_bar=False)
    # the companion site (tests/test_site.py, later in the same run) reuses these instead of executing again
    reuse = NOTEBOOKS.parent / "build" / "executed"
    reuse.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out, reuse / name)
    executed = nbformat.read(out, as_version=4)
    if int(name[:2]) <= 6:  # notebooks 00-06 (07 has its own owner)
        assert html_tables(executed) <= MAX_TABLES, f"{name}: {html_tables(executed)} tables (at most {MAX_TABLES})"
