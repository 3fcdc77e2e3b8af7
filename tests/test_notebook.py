"""The quickstart notebook executes top to bottom on CPU (tiny model), so it cannot rot."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel inherits this process's environment: CPU JAX with 8 fake devices.
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    outputs = {i: "".join(o.get("text", "") for o in c.get("outputs", []))
               for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    text = "\n".join(outputs.values())
    assert "devices:" in text and "parameters;" in text
    assert "output: 'DLROW OLLEH'" in text and "deterministic: True" in text
    assert "infinite loop -> ok: False" in text
    assert "trained steps 0 -> 1" in text and "proposals logged" in text
