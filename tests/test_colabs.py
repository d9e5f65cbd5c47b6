"""Every notebook in colabs/ runs top to bottom (short settings, fake data)."""

import json
import os
import sys
import types
from pathlib import Path

import pytest

from mim_jax.data import sources

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "colabs").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, fake_fmnist, monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "FASHION_MNIST_DIR", str(fake_fmnist))
    shown = []
    display = types.ModuleType("IPython.display")
    display.Image = lambda filename: filename
    display.display = shown.append
    monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    monkeypatch.chdir(ROOT)
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    namespace = {}
    for cell in cells:
        source = "".join(cell["source"])
        source = source.replace("STEPS = 300", "STEPS = 4").replace("/tmp/mae_colab", str(tmp_path))
        exec(compile(source, f"{path.name}", "exec"), namespace)
    assert shown and all(os.path.exists(p) for p in shown if isinstance(p, str))
