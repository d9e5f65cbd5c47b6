"""`python -m mim_jax.convert` as users run it (no PyTorch needed for .safetensors)."""

import json
import subprocess
import sys

import numpy as np
import safetensors.numpy

from mim_jax import methods
from mim_jax.convert import exporter, formats
from tests import runs
from tests.interop.conftest import random_params

# The tiny MAE of tests/runs.py (28x28 grey images, 7x7 patches) as a config flag list.
CONFIG = tuple(f for f in runs.TINY if f.startswith("--config=") or ".model." in f)


def _convert(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mim_jax.convert", *args],
        cwd=runs.ROOT,
        env=runs.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_then_export_to_timm(tmp_path):
    from configs import mae

    config = mae.get_config("data=synthetic")
    config.model.update(width=64, depth=2, num_heads=2, decoder_width=32)
    config.model.update(decoder_depth=1, decoder_heads=2)
    method = methods.build(config)
    theirs = exporter.to_state_dict(random_params(method, config), formats.MAE, method.model)
    theirs["head.weight"] = np.zeros((3, 64), np.float32)  # not in an MAE model
    source = tmp_path / "mae_pretrain_vit_tiny_full.safetensors"
    source.write_bytes(safetensors.numpy.save(theirs))

    out = _convert(*CONFIG, f"--torch_checkpoint={source}", f"--out={tmp_path}/ours")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "(mae layout) -> mim_jax method 'mae'" in out.stdout
    assert (
        "unexpected (1; in the source, not in the model: not loaded):\n    head.weight"
        in out.stdout
    )
    assert f"--config.init_from={tmp_path}/ours" in out.stdout

    strict = _convert(*CONFIG, f"--torch_checkpoint={source}", f"--out={tmp_path}/s", "--strict")
    assert strict.returncode != 0 and "does not match the model exactly" in strict.stderr

    out = _convert(f"--params={tmp_path}/ours", "--to=timm", f"--out={tmp_path}/timm")
    assert out.returncode == 0, out.stderr[-3000:]
    tensors = safetensors.numpy.load_file(str(tmp_path / "timm" / "model.safetensors"))
    np.testing.assert_array_equal(
        tensors["blocks.1.attn.qkv.weight"], theirs["blocks.1.attn.qkv.weight"]
    )
    meta = json.loads((tmp_path / "timm" / "config.json").read_text())
    assert meta["model_args"]["patch_size"] == 7 and meta["model_args"]["in_chans"] == 1

    usage = _convert(f"--out={tmp_path}/x")
    assert usage.returncode != 0 and "Give either --config and --torch_checkpoint" in usage.stderr
