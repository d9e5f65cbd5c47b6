"""Pretraining checkpoints of Audio-MAE, CrossMAE, SimMIM (ViT) and MAE-ST: round trips,
official key names and shapes (read from the cited source files), layouts and reports.
Torch-free except the `.pth` reading test."""

import jax
import numpy as np
import pytest
import safetensors.numpy

from configs import audiomae, crossmae, mae_st, simmim
from mim_jax import methods
from mim_jax.convert import exporter, formats, importer
from tests.interop.conftest import INTEROP, random_params


def tiny_audiomae(decoder: str = "swin"):
    """Audio-MAE on 64 frames x 32 mel bins, 8x8 patches (an 8x4 grid); the Swin decoder's
    4x4 windows with shift (2, 0) in its second block, as officially."""
    config = audiomae.get_config(f"decoder={decoder}")
    config.data.target_length, config.data.num_mel_bins = 64, 32
    config.model.update(patch_size=8, width=64, depth=2, num_heads=4)
    config.model.update(decoder_width=32, decoder_depth=2, decoder_heads=4)
    if decoder == "swin":
        config.model.meta_hidden = 24
    return config


def tiny_crossmae(**model):
    """CrossMAE on 28x28x1 (7x7 patches of 4), 3 encoder and 2 cross-attention blocks."""
    config = crossmae.get_config(None)
    config.model.update(patch_size=4, width=64, depth=3, num_heads=4)
    config.model.update({**dict(decoder_width=32, decoder_depth=2, decoder_heads=4), **model})
    return config


def tiny_simmim():
    """SimMIM ViT on 32x32x3 (a 4x4 grid of 8-pixel patches, 16-pixel mask cells)."""
    config = simmim.get_config(None)
    config.data.image_size, config.data.channels = 32, 3
    config.model.update(patch_size=8, width=64, depth=2, num_heads=4, mask_patch_size=16)
    return config


def tiny_mae_st(image_size: int = 32):
    """MAE-ST on 4 frames of 32x32x1, 2x8x8 cubes (2x4x4 tokens), 2 predicted frames."""
    config = mae_st.get_config(None)
    config.data.image_size, config.data.num_frames = image_size, 4
    config.model.update(patch_size=8, tubelet=2, width=64, depth=2, num_heads=4, pred_t_dim=2)
    config.model.update(decoder_width=32, decoder_depth=1, decoder_heads=4)
    return config


CASES = [
    (tiny_audiomae, "audiomae", 2),
    (lambda: tiny_audiomae("global"), "audiomae", 2),
    (tiny_crossmae, "crossmae", 2),
    (tiny_simmim, "simmim", 1),
    (tiny_mae_st, "mae_st", 0),
]


def _theirs(config, fmt: str, seed: int = 0):
    """Random params of `config`'s model and the same in `fmt`'s names and layouts."""
    method = methods.build(config)
    params = random_params(method, config, seed)
    return params, exporter.to_state_dict(params, formats.get(fmt), method.model)


@pytest.mark.parametrize("make,fmt,fixed", CASES, ids=[c[1] + str(i) for i, c in enumerate(CASES)])
def test_round_trip_is_exact_and_complete(make, fmt, fixed):
    """ours -> theirs -> ours gives the same arrays; the format is detected from the keys
    and every fixed table the state dict holds matches ours."""
    config = make()
    params, theirs = _theirs(config, fmt)
    back, report = importer.convert_tensors(config, theirs)
    assert report.format == fmt and report.complete, str(report)
    assert len(report.fixed) == fixed and all("matches" in f for f in report.fixed), report.fixed
    jax.tree.map(np.testing.assert_array_equal, back, params)


def _shapes(tensors: dict) -> dict:
    return {k: tuple(v.shape) for k, v in tensors.items()}


def test_audiomae_official_names():
    """models_mae.py + timm_patch/swin_transformer.py: W [out, in], Conv2d [D, 1, p, p],
    the meta MLP 2 -> meta_hidden -> heads, `tau` per head; the fixed tables [1, 1 + L, D]."""
    config = tiny_audiomae()
    params, theirs = _theirs(config, "audiomae")
    shapes = _shapes(theirs)
    expected = {
        "patch_embed.proj.weight": (64, 1, 8, 8),
        "cls_token": (1, 1, 64),
        "pos_embed": (1, 33, 64),
        "blocks.1.attn.qkv.weight": (192, 64),
        "norm.weight": (64,),
        "decoder_embed.weight": (32, 64),
        "mask_token": (1, 1, 32),
        "decoder_pos_embed": (1, 33, 32),
        "decoder_blocks.1.attn.qkv.weight": (96, 32),
        "decoder_blocks.1.attn.proj.weight": (32, 32),
        "decoder_blocks.1.attn.meta_mlp.fc1.weight": (24, 2),
        "decoder_blocks.1.attn.meta_mlp.fc1.bias": (24,),
        "decoder_blocks.1.attn.meta_mlp.fc2.weight": (4, 24),
        "decoder_blocks.1.attn.tau": (4,),
        "decoder_blocks.1.norm1.weight": (32,),
        "decoder_blocks.1.mlp.fc2.weight": (32, 128),
        "decoder_norm.weight": (32,),
        "decoder_pred.weight": (64, 32),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    # Buffers registered persistent=False are not in official state dicts.
    assert not any("attn_mask" in k or "relative_coordinates" in k for k in theirs)
    attn = params["decoder"]["blocks_1"]["attn"]
    np.testing.assert_array_equal(
        theirs["decoder_blocks.1.attn.meta_mlp.fc1.weight"], attn["meta_fc1"]["kernel"].T
    )
    np.testing.assert_array_equal(theirs["decoder_blocks.1.attn.tau"], attn["tau"])


def test_audiomae_swin_checkpoint_on_global_decoder_is_reported():
    """A decoder_mode=1 checkpoint given the global-decoder config: the encoder loads, and
    the report names the Swin-only tensors and the decoder params without a source."""
    _, theirs = _theirs(tiny_audiomae("swin"), "audiomae")
    params, report = importer.convert_tensors(tiny_audiomae("global"), theirs)
    assert report.format == "audiomae" and not report.complete
    assert "decoder_blocks.0.attn.meta_mlp.fc1.weight" in report.unexpected
    assert "decoder_blocks.0.attn.tau" in report.unexpected
    assert not report.missing and not report.mismatched  # same names, same shapes
    assert "encoder" in params and "decoder" in params


def test_crossmae_official_names():
    """models_cross.py: no encoder `norm`; dec_norms over the encoder width; wfm.linear
    [decoder_depth, depth + 1] (--use_input); cross_attn.kv [2 Dd, D] (k rows first)."""
    config = tiny_crossmae()
    params, theirs = _theirs(config, "crossmae")
    shapes = _shapes(theirs)
    expected = {
        "patch_embed.proj.weight": (64, 1, 4, 4),
        "blocks.2.attn.qkv.weight": (192, 64),
        "pos_embed": (1, 50, 64),
        "decoder_pos_embed": (1, 50, 32),
        "dec_norms.1.weight": (64,),
        "wfm.linear.weight": (2, 4),
        "mask_token": (1, 1, 32),
        "decoder_blocks.1.norm1.weight": (32,),
        "decoder_blocks.1.cross_attn.q.weight": (32, 32),
        "decoder_blocks.1.cross_attn.kv.weight": (64, 64),
        "decoder_blocks.1.cross_attn.kv.bias": (64,),
        "decoder_blocks.1.cross_attn.proj.weight": (32, 32),
        "decoder_blocks.1.mlp.fc1.weight": (128, 32),
        "decoder_norm.weight": (32,),
        "decoder_pred.weight": (16, 32),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    assert "norm.weight" not in theirs
    kv = params["decoder_1"]["cross_attn"]["kv"]["kernel"]  # [D, 2 Dd]: k then v columns
    np.testing.assert_array_equal(
        theirs["decoder_blocks.1.cross_attn.kv.weight"][:32], kv[:, :32].T
    )


def test_crossmae_without_use_input_is_reported():
    """A checkpoint trained without --use_input mixes `depth` maps, not `depth + 1`: its
    wfm.linear.weight is reported as mismatched with both shapes."""
    _, theirs = _theirs(tiny_crossmae(), "crossmae")
    theirs["wfm.linear.weight"] = theirs["wfm.linear.weight"][:, 1:]
    _, report = importer.convert_tensors(tiny_crossmae(), theirs)
    assert report.mismatched == [
        "feature_weights/kernel <- wfm.linear.weight: shape (2, 3), expected (2, 4)"
    ]


def _official_rel_pos_index(h: int, w: int) -> np.ndarray:
    """SimMIM models/vision_transformer.py RelativePositionBias.__init__, in numpy."""
    coords = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0).copy()
    rel[:, :, 0] += h - 1
    rel[:, :, 1] += w - 1
    rel[:, :, 0] *= 2 * w - 1
    n = (2 * h - 1) * (2 * w - 1) + 3
    index = np.zeros((h * w + 1,) * 2, np.int64)
    index[1:, 1:] = rel.sum(-1)
    index[0, 0:] = n - 3
    index[0:, 0] = n - 2
    index[0, 0] = n - 1
    return index


def test_simmim_official_names_and_layouts():
    """models/simmim.py: all under `encoder.`; qkv without bias plus q_bias/v_bias; layer
    scale gamma_1/2; the shared bias table [(2h-1)(2w-1) + 3, heads] and its index buffer;
    the head a 1x1 Conv2d [s*s*3, D, 1, 1] computing what our Dense computes."""
    config = tiny_simmim()
    params, theirs = _theirs(config, "simmim")
    shapes = _shapes(theirs)
    expected = {
        "encoder.patch_embed.proj.weight": (64, 3, 8, 8),
        "encoder.cls_token": (1, 1, 64),
        "encoder.mask_token": (1, 1, 64),
        "encoder.blocks.1.attn.qkv.weight": (192, 64),
        "encoder.blocks.1.attn.q_bias": (64,),
        "encoder.blocks.1.attn.v_bias": (64,),
        "encoder.blocks.1.gamma_1": (64,),
        "encoder.blocks.1.gamma_2": (64,),
        "encoder.rel_pos_bias.relative_position_bias_table": (52, 4),
        "encoder.rel_pos_bias.relative_position_index": (17, 17),
        "encoder.norm.weight": (64,),
        "decoder.0.weight": (192, 64, 1, 1),
        "decoder.0.bias": (192,),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    assert not any(k.endswith("qkv.bias") or "pos_embed" in k for k in theirs)
    np.testing.assert_array_equal(
        theirs["encoder.rel_pos_bias.relative_position_index"], _official_rel_pos_index(4, 4)
    )
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2, 4, 4, 64)).astype(np.float32)  # the encoder map, NHWC
    w, b = theirs["decoder.0.weight"], theirs["decoder.0.bias"]
    torch_like = np.einsum("bhwc,oc->bhwo", z, w[:, :, 0, 0]) + b  # Conv2d(k=1)
    dec = params["decoder"]
    np.testing.assert_allclose(z @ dec["kernel"] + dec["bias"], torch_like, rtol=1e-5, atol=1e-5)


def test_simmim_per_block_relative_bias_is_reported():
    """USE_RPB (a table per block) instead of the shared one: reported by key."""
    _, theirs = _theirs(tiny_simmim(), "simmim")
    table = theirs.pop("encoder.rel_pos_bias.relative_position_bias_table")
    theirs["encoder.blocks.0.attn.relative_position_bias_table"] = table
    _, report = importer.convert_tensors(tiny_simmim(), theirs)
    assert report.missing == [
        "encoder/rel_pos_bias/table (looked for encoder.rel_pos_bias.relative_position_bias_table)"
    ]
    assert report.unexpected == ["encoder.blocks.0.attn.relative_position_bias_table"]


def test_mae_st_official_names():
    """models_mae.py + util/video_vit.py: separate q/k/v Linears; separable learned tables;
    a decoder cls token; Conv3d [D, C, u, p, p]."""
    config = tiny_mae_st()
    params, theirs = _theirs(config, "mae_st")
    shapes = _shapes(theirs)
    expected = {
        "patch_embed.proj.weight": (64, 1, 2, 8, 8),
        "cls_token": (1, 1, 64),
        "pos_embed_spatial": (1, 16, 64),
        "pos_embed_temporal": (1, 2, 64),
        "pos_embed_class": (1, 1, 64),
        "blocks.1.attn.q.weight": (64, 64),
        "blocks.1.attn.k.bias": (64,),
        "blocks.1.attn.v.weight": (64, 64),
        "blocks.1.attn.proj.weight": (64, 64),
        "norm.weight": (64,),
        "decoder_embed.weight": (32, 64),
        "mask_token": (1, 1, 32),
        "decoder_cls_token": (1, 1, 32),
        "decoder_pos_embed_spatial": (1, 16, 32),
        "decoder_pos_embed_temporal": (1, 2, 32),
        "decoder_pos_embed_class": (1, 1, 32),
        "decoder_blocks.0.attn.q.weight": (32, 32),
        "decoder_norm.weight": (32,),
        "decoder_pred.weight": (64, 32),  # t_pred_patch_size (1) * p * p * 1
    }
    assert {k: shapes.get(k) for k in expected} == expected
    assert not any(".qkv." in k for k in theirs)
    qkv = params["encoder"]["blocks_1"]["attn"]["qkv"]
    for i, name in enumerate("qkv"):
        cols = slice(i * 64, (i + 1) * 64)
        np.testing.assert_array_equal(
            theirs[f"blocks.1.attn.{name}.weight"], qkv["kernel"][:, cols].T
        )
        np.testing.assert_array_equal(theirs[f"blocks.1.attn.{name}.bias"], qkv["bias"][cols])


def test_mae_st_spatial_tables_of_another_grid_are_resampled():
    """A 4x4-grid checkpoint on a 6x6-grid model: both spatial tables resampled
    bicubically (no cls row in them), everything else loaded as is."""
    _, theirs = _theirs(tiny_mae_st(32), "mae_st")
    params, report = importer.convert_tensors(tiny_mae_st(48), theirs)
    assert report.complete, str(report)
    assert report.reshaped == [
        "decoder_pos_embed/spatial <- decoder_pos_embed_spatial: grid 4x4 -> 6x6 (bicubic)",
        "pos_embed/spatial <- pos_embed_spatial: grid 4x4 -> 6x6 (bicubic)",
    ]
    assert params["pos_embed"]["spatial"].shape == (1, 36, 64)
    np.testing.assert_array_equal(params["pos_embed"]["temporal"], theirs["pos_embed_temporal"])


def test_new_formats_refuse_other_methods():
    _, theirs = _theirs(tiny_crossmae(), "crossmae")
    with pytest.raises(ValueError, match="match none of the formats for method 'simmim'"):
        importer.convert_tensors(tiny_simmim(), theirs)
    with pytest.raises(
        ValueError, match="'simmim' .*maps methods .*not --config's method 'crossmae'"
    ):
        importer.convert_tensors(tiny_crossmae(), theirs, fmt="simmim")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_import_from_pth_and_safetensors(tmp_path, suffix):
    """An official-style file ({"model": state_dict} pickle, or flat safetensors) imports
    completely into an export directory."""
    config = tiny_mae_st()
    _, theirs = _theirs(config, "mae_st")
    path = tmp_path / f"checkpoint{suffix}"
    if suffix == ".pth":
        torch = pytest.importorskip("torch", reason=INTEROP)
        torch.save({"model": {k: torch.from_numpy(v) for k, v in theirs.items()}}, path)
    else:
        path.write_bytes(safetensors.numpy.save(theirs))
    report = importer.import_checkpoint(config, str(path), str(tmp_path / "out"), strict=True)
    assert report.format == "mae_st" and report.complete
    assert (tmp_path / "out" / "convert_report.json").exists()
