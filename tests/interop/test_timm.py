"""Parity with timm's VisionTransformer: our encoder / classifier exported with
`export_to(..., "timm")`, built from the written `model_args`, loaded strictly; and timm's
random init imported back exactly."""

import json

import jax
import numpy as np
import pytest
import safetensors.numpy

from mim_jax import methods
from mim_jax.convert import exporter, importer, state_dict
from tests.interop.conftest import (
    INTEROP,
    import_timm_vit,
    random_params,
    rel_err,
    tiny_classifier,
    tiny_mae,
)

torch = pytest.importorskip("torch", reason=INTEROP)

OUT_TOL = 1e-4


def _timm_model(out_dir):
    vit = import_timm_vit()
    args = json.loads((out_dir / "config.json").read_text())["model_args"]
    model = vit.VisionTransformer(**args).eval()
    tensors = safetensors.numpy.load_file(str(out_dir / "model.safetensors"))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    return model


def _images(config, batch=2, seed=1):
    size, channels = config.data.image_size, config.data.channels
    return (
        np.random.default_rng(seed)
        .standard_normal((batch, size, size, channels))
        .astype(np.float32)
    )


def _nchw(images):
    return torch.from_numpy(images.transpose(0, 3, 1, 2).copy())


@pytest.mark.parametrize("pool", ["gap", "cls"])
def test_classifier_matches_timm(pool, tmp_path):
    config = tiny_classifier(pool=pool)
    method = methods.build(config)
    params = random_params(method, config)
    model = _timm_model(exporter.export_to(params, config, "timm", tmp_path / "timm"))
    images = _images(config)
    ours = method.predict(params, {}, images)
    with torch.no_grad():
        theirs = model(_nchw(images)).numpy()
    assert rel_err(ours, theirs) < OUT_TOL


@pytest.mark.slow  # ViT-B on CPU: ~25 s (CI time); the tiny-model parity tests run by default
def test_mae_vit_b16_encoder_features_match_timm(tmp_path):
    """MAE ViT-B/16's unmasked encoder output (all 197 tokens, after the final norm) ==
    timm's forward_features on the exported weights."""
    from configs import mae

    config = mae.get_config("variant=B/16,data=synthetic")
    config.dtype = "float32"
    method = methods.build(config)
    params = random_params(method, config)
    encoder = {k: v for k, v in params.items() if k in method.encoder_keys}
    model = _timm_model(exporter.export_to(encoder, config, "timm", tmp_path / "timm"))
    images = _images(config)
    ours = method.model.apply({"params": params}, images, method="encode")
    with torch.no_grad():
        theirs = model.forward_features(_nchw(images)).numpy()
    err = rel_err(ours, theirs)
    print(f"MAE ViT-B/16 encoder vs timm VisionTransformer: relative error {err:.2g}")
    assert err < OUT_TOL


def test_timm_weights_import_exactly(tmp_path):
    """timm's own init (global pool + fc_norm, as MAE's fine-tuned checkpoints) -> ours ->
    timm, through a .pth file read with torch, the official {"model": ...} wrapper."""
    vit = import_timm_vit()
    config = tiny_classifier()
    args = exporter.timm_model_args(config)
    model = vit.VisionTransformer(**args).eval()
    path = tmp_path / "finetuned.pth"
    torch.save({"model": model.state_dict(), "epoch": 3}, path)
    params, report = importer.convert_tensors(config, state_dict.read(path), source=str(path))
    assert report.format == "timm" and report.complete, str(report)
    back = _timm_model(exporter.export_to(params, config, "timm", tmp_path / "back"))
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key].numpy(), value.numpy(), err_msg=key)
    images = _images(config)
    method = methods.build(config)
    with torch.no_grad():
        theirs = model(_nchw(images)).numpy()
    assert rel_err(method.predict(params, {}, images), theirs) < OUT_TOL
    jax.tree.map(
        np.testing.assert_array_equal,
        params,
        importer.convert_tensors(config, state_dict.read(path))[0],
    )


def test_mae_checkpoint_pth_to_init_from(tmp_path):
    """An official-layout MAE `_full` .pth (with `args` pickled next to the weights, as
    main_pretrain.py saves) -> export dir, report complete."""
    config = tiny_mae()
    method = methods.build(config)
    params = random_params(method, config)
    from mim_jax.convert import formats

    theirs = exporter.to_state_dict(params, formats.MAE, method.model)
    path = tmp_path / "mae_full.pth"
    torch.save(
        {"model": {k: torch.from_numpy(v) for k, v in theirs.items()}, "args": {"lr": 1}}, path
    )
    from mim_jax.convert import import_checkpoint

    report = import_checkpoint(config, str(path), str(tmp_path / "out"))
    assert report.complete and len(report.fixed) == 2, str(report)
