"""tools/reconstruct: a run or export loads back, user files become the run's inputs, and
the mask ratio is the one asked for."""

import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from mim_jax import export, methods
from mim_jax.data import pipeline
from mim_jax.tools import reconstruct
from tests import runs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    out = runs.run(workdir, "--config.total_steps=2")  # tiny MAE, synthetic 28x28 grey
    assert out.returncode == 0, out.stderr[-3000:]
    return workdir


def _png(path, size, mode="RGB", seed=0):
    pixels = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return str(path)


def test_a_workdir_and_its_export_with_the_decoder_load_the_same_weights(trained, tmp_path):
    params, config = reconstruct.load(str(trained))
    assert config.method == "mae" and "decoder" in params
    export.export(str(trained), str(tmp_path / "x"), include_decoder=True)
    exported, _ = reconstruct.load(str(tmp_path / "x"))
    jax.tree.map(np.testing.assert_array_equal, exported, params)


def test_an_encoder_only_export_is_refused_with_the_fix(trained, tmp_path):
    export.export(str(trained), str(tmp_path / "enc"))
    params, config = reconstruct.load(str(tmp_path / "enc"))
    images = np.zeros((1, 28, 28, 1), np.uint8)
    with pytest.raises(ValueError, match="--export_decoder"):
        reconstruct.reconstruct(params, config, images)


def test_files_of_any_size_and_colour_become_the_runs_input(trained, tmp_path):
    _, config = reconstruct.load(str(trained))
    paths = [_png(tmp_path / "a.png", (60, 40)), _png(tmp_path / "b.png", (28, 28), "L", 1)]
    batch = reconstruct.read_inputs(paths, config.data)
    assert batch.shape == (2, 28, 28, 1) and batch.dtype == np.uint8
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png"):
        reconstruct.read_inputs([str(tmp_path / "bad.png")], config.data)


@pytest.mark.parametrize("ratio", [0.25, 0.75])
def test_the_masked_view_hides_the_requested_share_of_patches(trained, ratio):
    params, config = reconstruct.load(str(trained))
    rng = np.random.default_rng(0)
    images = rng.integers(1, 255, (4, 28, 28, 1), dtype=np.uint8)
    picture = reconstruct.reconstruct(params, config, images, mask_ratio=ratio, seed=3)
    assert picture.size[0] > 4 * 28  # four views side by side
    # The same views before drawing: hidden patches are the (normalised) zero.
    cfg = reconstruct.with_mask_ratio(config, ratio)
    method = methods.build(cfg)
    x = pipeline.normalize(images, cfg.data.mean, cfg.data.std)
    masked = np.asarray(method.reconstruct(params, x, {"masking": jax.random.PRNGKey(3)})["masked"])
    patches = masked.reshape(4, 4, 7, 4, 7).transpose(0, 1, 3, 2, 4).reshape(4, 16, 49)
    hidden = np.all(patches == 0, axis=-1).sum(axis=1)
    assert (hidden == round(16 * ratio)).all(), hidden


def test_mask_ratio_checks_and_cae_counts_patches():
    from configs import cae

    config = cae.get_config()
    assert reconstruct.with_mask_ratio(config, 0.75).model.num_masked == 12  # of 16 patches
    assert config.model.num_masked == 8  # the original is untouched
    with pytest.raises(ValueError, match=r"mask_ratio=1.5 must be in \(0, 1\)"):
        reconstruct.with_mask_ratio(config, 1.5)


def test_cli_writes_the_picture(trained, tmp_path):
    path = _png(tmp_path / "in.png", (32, 32))
    flags = [f"--run={trained}", f"--inputs={path},{path}", "--mask_ratio=0.5"]
    out = subprocess.run(
        [sys.executable, "-m", "mim_jax.tools.reconstruct", *flags, f"--out={tmp_path}/out.png"],
        cwd=runs.ROOT,
        env=runs.env(1),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    picture = Image.open(tmp_path / "out.png")
    assert picture.size[1] > 2 * 28  # two rows, one per input
