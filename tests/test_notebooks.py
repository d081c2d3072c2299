"""Every notebook in notebooks/ runs headless, at its small settings, without an error."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "runs"))
    monkeypatch.setenv("WORKBENCH_NOTEBOOK_SCALE", "test")
    monkeypatch.setenv("PYTHONPATH", str(path.parent.parent))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    # Every notebook stores what it made (runs, rollouts, labels, prediction sets) under WORKBENCH_HOME.
    assert any((tmp_path / "runs").glob("*.sqlite"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_that_show_widgets_load_panel_first(path):
    """In a fresh JupyterLab a Panel component renders only after `pn.extension(...)` ran in the kernel."""
    import json

    cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    first_widget = next((i for i, src in enumerate(cells) if "from widgets" in src), None)
    if first_widget is not None:
        assert any("pn.extension(" in src for src in cells[:first_widget + 1]), \
            f"{path.name} shows widgets without calling pn.extension() first"
