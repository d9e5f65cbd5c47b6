"""Every notebook in colabs/ runs top to bottom in a real Jupyter kernel (nbclient), with
its parameters cell overridden for a small budget; any cell error fails the test."""

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "colabs").glob("*.ipynb"))

# Per notebook: values replacing its parameters (small budgets; synthetic video and audio,
# whose embedded datasets are exercised by their own tests).
SMALL = {
    "quickstart.ipynb": {"STEPS": 4, "EVAL_EXAMPLES": 300},
    "masking_gallery.ipynb": {"SAMPLES": 2},
    "reconstruct.ipynb": {
        "STEPS": 2,
        "DATA_OVERRIDES": {
            "video": {"name": "synthetic", "synthetic_examples": 128},
            "audio": {"name": "synthetic", "synthetic_examples": 128},
        },
    },
}


@pytest.fixture(scope="module")
def kernel(tmp_path_factory) -> str:
    """A kernelspec running this interpreter on one CPU device, found through JUPYTER_PATH."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "mim_jax_test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "mim_jax tests",
                "language": "python",
                "env": {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""},
            }
        )
    )
    return str(root)


def test_every_notebook_has_a_parameters_cell_and_no_outputs():
    assert {p.name for p in NOTEBOOKS} == set(SMALL)
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), path.name
        assert all(not c.outputs and c.execution_count is None for c in code), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, kernel, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", kernel)
    nb = nbformat.read(path, as_version=4)
    params = {**SMALL[path.name]}
    if "WORKDIR" in nb.cells[1].source:
        params["WORKDIR"] = str(tmp_path / "work")
    first = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    nb.cells.insert(first + 1, nbformat.v4.new_code_cell(injected))
    client = NotebookClient(
        nb,
        kernel_name="mim_jax_test",
        timeout=300,  # per cell
        startup_timeout=120,
        resources={"metadata": {"path": str(ROOT / "colabs")}},  # as opened from a checkout
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any(o.output_type == "display_data" and "image/png" in o.data for o in outputs)
