"""Key mappings, reports and the export-directory writer, without PyTorch."""

import builtins
import json

import jax
import numpy as np
import pytest
import safetensors.numpy

from mim_jax import checkpoint, export, methods
from mim_jax.convert import exporter, formats, importer, state_dict
from mim_jax.models.patch import PatchEmbed, TubeletEmbed
from tests.interop.conftest import random_params, tiny_classifier, tiny_mae, tiny_videomae

CASES = [
    (tiny_mae, "mae"),
    (tiny_mae, "hf_vitmae"),
    (tiny_videomae, "videomae"),
    (tiny_videomae, "hf_videomae"),
    (tiny_classifier, "timm"),
]


def _theirs(config, fmt: str, seed: int = 0):
    """Random params of `config`'s model and the same in `fmt`'s names and layouts."""
    method = methods.build(config)
    params = random_params(method, config, seed)
    return method, params, exporter.to_state_dict(params, formats.get(fmt), method.model)


@pytest.mark.parametrize("make,fmt", CASES)
def test_round_trip_is_exact_and_complete(make, fmt):
    config = make()
    _, params, theirs = _theirs(config, fmt)
    back, report = importer.convert_tensors(config, theirs)
    assert report.format == fmt and report.complete, str(report)
    jax.tree.map(np.testing.assert_array_equal, back, params)


def test_torch_layouts():
    """Linear [out, in], Conv2d [D, C, p, p], Conv3d [D, C, u, p, p], split q/k/v."""
    config = tiny_mae()
    _, params, mae_sd = _theirs(config, "mae")
    enc = params["encoder"]["blocks_0"]
    np.testing.assert_array_equal(mae_sd["blocks.0.mlp.fc1.weight"], enc["mlp"]["fc1"]["kernel"].T)
    assert mae_sd["patch_embed.proj.weight"].shape == (64, 3, 8, 8)
    _, params, hf_sd = _theirs(config, "hf_vitmae")
    qkv = params["encoder"]["blocks_1"]["attn"]["qkv"]
    for i, name in enumerate(("query", "key", "value")):
        prefix = f"vit.encoder.layer.1.attention.attention.{name}"
        np.testing.assert_array_equal(
            hf_sd[f"{prefix}.weight"], qkv["kernel"][:, i * 64 : (i + 1) * 64].T
        )
        np.testing.assert_array_equal(hf_sd[f"{prefix}.bias"], qkv["bias"][i * 64 : (i + 1) * 64])
    _, params, vm_sd = _theirs(tiny_videomae(), "videomae")
    assert vm_sd["encoder.patch_embed.proj.weight"].shape == (64, 3, 2, 8, 8)
    np.testing.assert_array_equal(
        vm_sd["encoder.blocks.0.attn.q_bias"], params["encoder"]["blocks_0"]["attn"]["q_bias"]
    )
    assert "encoder.blocks.0.attn.qkv.bias" not in vm_sd  # VideoMAE: q/v biases only


def test_conv_weights_compute_what_torch_convs_compute():
    """A torch-layout conv weight, applied as torch defines conv (sum over c, kernel
    offsets), gives what our patch / tubelet embedding computes with the converted kernel."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 3, 4, 4)).astype(np.float32)  # Conv2d [D, C, p, p]
    b = rng.standard_normal(5).astype(np.float32)
    x = rng.standard_normal((2, 8, 12, 3)).astype(np.float32)  # NHWC
    kernel = formats.to_ours(formats.CONV, [w])
    ours = PatchEmbed(4, 5).apply({"params": {"proj": {"kernel": kernel, "bias": b}}}, x)
    patches = x.reshape(2, 2, 4, 3, 4, 3).transpose(0, 1, 3, 5, 2, 4)  # [B, h, w, C, p, p]
    torch_like = np.einsum("bhwcij,dcij->bhwd", patches, w).reshape(2, 6, 5) + b
    np.testing.assert_allclose(ours, torch_like, rtol=1e-5, atol=1e-5)

    w3 = rng.standard_normal((5, 3, 2, 4, 4)).astype(np.float32)  # Conv3d [D, C, u, p, p]
    v = rng.standard_normal((1, 4, 8, 8, 3)).astype(np.float32)  # [B, T, H, W, C]
    kernel = formats.to_ours(formats.CONV, [w3])
    ours = TubeletEmbed(2, 4, 5).apply({"params": {"proj": {"kernel": kernel, "bias": b}}}, v)
    cubes = v.reshape(1, 2, 2, 2, 4, 2, 4, 3).transpose(0, 1, 3, 5, 7, 2, 4, 6)
    torch_like = np.einsum("bthwcuij,dcuij->bthwd", cubes, w3).reshape(1, 8, 5) + b
    np.testing.assert_allclose(ours, torch_like, rtol=1e-5, atol=1e-5)


def test_fixed_tables_are_checked_not_loaded():
    config = tiny_mae()
    _, _, theirs = _theirs(config, "mae")
    _, report = importer.convert_tensors(config, theirs)
    assert len(report.fixed) == 2 and all("matches" in f for f in report.fixed)
    theirs["pos_embed"] = theirs["pos_embed"] + 0.5  # a learned table
    _, report = importer.convert_tensors(config, theirs)
    assert any(f.startswith("pos_embed: DIFFERS") for f in report.fixed), str(report)


def test_mismatched_checkpoint_report():
    """A 3-block ViT-64 checkpoint on a 2-block model whose decoder is 48 wide: every kind
    of problem is listed by key, with shapes."""
    source = tiny_mae(depth=3, decoder_width=48)
    _, _, theirs = _theirs(source, "mae")
    del theirs["blocks.0.norm1.bias"]
    theirs["extra.weight"] = np.zeros(3, np.float32)
    target = tiny_mae()
    params, report = importer.convert_tensors(target, theirs, source="bad.pth")
    assert not report.complete
    assert "encoder/blocks_0/norm1/bias (looked for blocks.0.norm1.bias)" in report.missing
    assert "blocks.2.attn.qkv.weight" in report.unexpected and "extra.weight" in report.unexpected
    assert (
        "decoder_embed/kernel <- decoder_embed.weight: shape (48, 64), expected (32, 64)"
        in report.mismatched
    )
    text = str(report)
    assert "bad.pth (mae layout) -> mim_jax method 'mae'" in text
    for section in ("missing", "mismatched", "unexpected"):
        assert f"  {section} (" in text
    # What converted is there; what did not is absent (left at init by init_from).
    assert "decoder_embed" not in params and "norm1" in params["encoder"]["blocks_1"]
    assert "bias" not in params["encoder"]["blocks_0"]["norm1"]


def test_pos_embed_of_another_grid_is_resampled():
    """A classifier's learned pos_embed from a 4x4 grid checkpoint on a 6x6 model."""
    _, _, theirs = _theirs(tiny_classifier(), "timm")
    target = tiny_classifier()
    target.data.image_size = 48
    params, report = importer.convert_tensors(target, theirs)
    assert report.reshaped == ["pos_embed <- pos_embed: grid 4x4 -> 6x6 (bicubic)"]
    assert params["pos_embed"].shape == (1, 37, 64) and report.complete
    np.testing.assert_array_equal(params["pos_embed"][0, 0], theirs["pos_embed"][0, 0])


def test_wrong_method_and_unknown_keys_fail_clearly():
    _, _, theirs = _theirs(tiny_videomae(), "videomae")
    with pytest.raises(ValueError, match="match none of the formats for method 'mae'"):
        importer.convert_tensors(tiny_mae(), theirs)
    with pytest.raises(ValueError, match="maps methods .*not --config's method 'mae'"):
        importer.convert_tensors(tiny_mae(), theirs, fmt="videomae")


def test_read_unwraps_official_wrappers(tmp_path):
    sd = {"module.blocks.0.norm1.weight": np.ones(4, np.float32)}
    path = tmp_path / "x.safetensors"
    path.write_bytes(safetensors.numpy.save(sd))
    assert list(state_dict.read(path)) == ["blocks.0.norm1.weight"]
    assert list(state_dict.unwrap({"model": {"a": 1}, "epoch": 3})) == ["a"]
    with pytest.raises(ValueError, match="unknown checkpoint type '.npz'"):
        (tmp_path / "x.npz").write_bytes(b"")
        state_dict.read(tmp_path / "x.npz")


def test_pth_without_torch_says_how_to_install(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    (tmp_path / "m.pth").write_bytes(b"x")
    with pytest.raises(
        ImportError, match=r"m\.pth .*needs PyTorch.*pip install -e '\.\[interop\]'"
    ):
        state_dict.read(tmp_path / "m.pth")


def test_import_writes_an_export_that_init_from_loads(tmp_path):
    """A converted encoder-only checkpoint: the export holds the encoder; restore_params
    (config.init_from) loads it into a fresh model and re-initialises the decoder."""
    config = tiny_mae()
    method, params, theirs = _theirs(config, "mae")
    theirs = {k: v for k, v in theirs.items() if not k.startswith(("decoder", "mask_token"))}
    path = tmp_path / "mae_pretrain.safetensors"
    path.write_bytes(
        safetensors.numpy.save({k: np.ascontiguousarray(v) for k, v in theirs.items()})
    )
    report = importer.import_checkpoint(config, str(path), str(tmp_path / "out"))
    assert report.unexpected == [] and all(
        m.startswith(("decoder", "mask_token")) for m in report.missing
    )
    info = json.loads((tmp_path / "out" / "export.json").read_text())
    assert info["format"] == "mae" and info["parts"] == ["encoder"] and info["method"] == "mae"
    assert json.loads((tmp_path / "out" / "convert_report.json").read_text())["missing"]
    fresh = method.init(jax.random.key(1), {"image": np.zeros((1, 32, 32, 3), np.float32)})
    loaded, init_report = checkpoint.restore_params(str(tmp_path / "out"), fresh)
    assert not init_report["skipped"]
    assert all(k.startswith(("decoder", "mask_token")) for k in init_report["reinitialized"])
    jax.tree.map(np.testing.assert_array_equal, loaded["encoder"], params["encoder"])
    _, config_back = export.load(str(tmp_path / "out"))
    assert config_back.model.width == 64


def test_export_refuses_encoder_only_params_for_hf(tmp_path):
    config = tiny_mae()
    _, params, _ = _theirs(config, "mae")
    encoder = {k: v for k, v in params.items() if k in ("patch_embed", "cls_token", "encoder")}
    with pytest.raises(ValueError, match="needs the decoder.*--export_decoder"):
        exporter.export_to(encoder, config, "hf", tmp_path / "hf")
    out = exporter.export_to(encoder, config, "timm", tmp_path / "timm")
    tensors = safetensors.numpy.load_file(str(out / "model.safetensors"))
    assert "pos_embed" in tensors and not any(k.startswith("decoder") for k in tensors)
    args = json.loads((out / "config.json").read_text())["model_args"]
    assert args["embed_dim"] == 64 and args["num_classes"] == 0 and args["global_pool"] == "token"


def _small_finetune(module):
    config = module.get_config()
    config.model.update(width=32, depth=2, num_heads=2)
    return config


def test_videomae_fine_tuned_checkpoints_use_timm_names_for_the_video_classifier():
    from configs import videomae_finetune

    config = _small_finetune(videomae_finetune)  # modeling_finetune.py VisionTransformer
    _, params, theirs = _theirs(config, "timm")
    assert theirs["patch_embed.proj.weight"].shape == (32, 1, 2, 8, 8)  # Conv3d [D, C, u, p, p]
    assert {"blocks.1.attn.q_bias", "blocks.1.attn.v_bias", "fc_norm.weight", "head.weight"} <= set(
        theirs
    )
    assert not any(k.startswith(("cls_token", "pos_embed", "norm.")) for k in theirs)
    back, report = importer.convert_tensors(config, theirs)
    assert report.format == "timm" and report.complete, str(report)
    jax.tree.map(np.testing.assert_array_equal, back, params)


def test_audiomae_fine_tuned_checkpoints_use_timm_names_for_the_audio_classifier():
    from configs import audiomae_finetune

    config = _small_finetune(audiomae_finetune)  # AudioMAE models_vit.py (timm names)
    _, params, theirs = _theirs(config, "timm")
    assert {"cls_token", "patch_embed.proj.weight", "fc_norm.weight", "head.weight"} <= set(theirs)
    back, report = importer.convert_tensors(config, theirs)
    assert report.complete, str(report)
    jax.tree.map(np.testing.assert_array_equal, back, params)
