import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mim_jax.models import swin

# grids 8 (shifted 4 x 4 windows) -> 4 (one window, clamped: no shift)
TINY = dict(image_size=(32, 32), embed_dim=16, depths=(2, 2), num_heads=(1, 2), window_size=4)


def _random_params(model, *args):
    """Parameters of the right shapes filled with N(0, 0.5^2) from NumPy: `model.init` under
    jit takes seconds of XLA compile on CPU, and these tests need no particular init."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), *args)
    rng = np.random.default_rng(0)
    return jax.tree.map(lambda s: jnp.asarray(0.5 * rng.standard_normal(s.shape), s.dtype), shapes)


def test_relative_position_index_matches_the_official_formula():
    # window 2, tokens row-major: 0=(0,0), 1=(0,1), 2=(1,0), 3=(1,1); table side 2w-1 = 3
    index = swin.relative_position_index(2)
    assert index.shape == (4, 4)
    assert index[0, 3] == 0  # offset (-1, -1)
    assert index[3, 0] == 8  # offset (+1, +1)
    assert index[1, 2] == 2  # offset (-1, +1): (0) * 3 + 2
    np.testing.assert_array_equal(np.diag(index), 4)  # offset (0, 0), the table's centre


def test_stage_window_clamps_like_the_official_block():
    assert swin.stage_window((48, 48), 6) == (6, 3)
    assert swin.stage_window((6, 6), 6) == (6, 0)  # resolution <= window: no shift
    assert swin.stage_window((3, 6), 4) == (3, 0)  # square window of the shorter side
    with pytest.raises(ValueError, match="not divisible"):
        swin.stage_window((10, 10), 4)


def _direct_attention(p, x, win, shift, heads):
    """Full [L, L] attention on the grid: a token sees the tokens of its own window of the
    rolled grid, with the table's bias for their in-window offset and -100 across the
    regions the roll wrapped together. No roll, partition or reverse."""
    b, h, w, c = x.shape
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    rr, rc = ((rows - shift) % h).reshape(-1), ((cols - shift) % w).reshape(-1)
    win_id = (rr // win) * (w // win) + rc // win
    ir, ic = rr % win, rc % win  # position inside the window

    def region(pos, n):
        return np.where(pos < n - win, 0, np.where(pos < n - shift, 1, 2)) if shift else 0 * pos

    reg = region(rr, h) * 3 + region(rc, w)
    index = (ir[:, None] - ir[None, :] + win - 1) * (2 * win - 1) + (ic[:, None] - ic[None, :])
    index = index + win - 1
    bias = np.asarray(p["relative_position_bias_table"])[index].transpose(2, 0, 1)  # [h, L, L]

    tokens = x.reshape(b, h * w, c)
    qkv = tokens @ p["qkv"]["kernel"] + p["qkv"]["bias"]
    q, k, v = np.moveaxis(np.asarray(qkv).reshape(b, h * w, 3, heads, c // heads), 2, 0)
    logits = np.einsum("bihd,bjhd->bhij", q, k) / np.sqrt(c // heads) + bias
    logits = logits + np.where(reg[:, None] != reg[None, :], -100.0, 0.0)
    logits = np.where(win_id[:, None] == win_id[None, :], logits, -np.inf)
    attn = np.exp(logits - logits.max(-1, keepdims=True))
    attn /= attn.sum(-1, keepdims=True)
    out = np.einsum("bhij,bjhd->bihd", attn, v).reshape(b, h * w, c)
    return (out @ p["proj"]["kernel"] + p["proj"]["bias"]).reshape(b, h, w, c)


@pytest.mark.parametrize("shift", [0, 2])
def test_window_attention_equals_direct_masked_attention(shift):
    win, heads, c = 4, 2, 8
    attn = swin.WindowAttention(heads, win, shift)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, c))
    params = _random_params(attn, x)["params"]  # large biases and table: every term matters
    got = attn.apply({"params": params}, x)
    expected = _direct_attention(jax.device_get(params), np.asarray(x), win, shift, heads)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_simmim_swin_base_parameter_count_equals_official():
    # microsoft/SimMIM models/simmim.py SwinTransformerForSimMIM(img_size=192, patch_size=4,
    # embed_dim=128, depths=[2,2,18,2], num_heads=[4,8,16,32], window_size=6, num_classes=0),
    # instantiated in torch and counted as sum(p.numel() for p in model.parameters())
    # (buffers relative_position_index / attn_mask are not parameters): 86,725,304 incl. the
    # 128-dim mask_token; the SimMIM 1x1-conv decoder adds 1024 * 3072 + 3072 = 3,148,800.
    model = swin.SwinTransformer(
        image_size=(192, 192),
        embed_dim=128,
        depths=(2, 2, 18, 2),
        num_heads=(4, 8, 16, 32),
        window_size=6,
    )
    images = jax.ShapeDtypeStruct((1, 192, 192, 3), jnp.float32)
    mask = jax.ShapeDtypeStruct((1, 48 * 48), jnp.bool_)
    params = jax.eval_shape(model.init, jax.random.key(0), images, mask)["params"]
    assert sum(np.prod(p.shape) for p in jax.tree.leaves(params)) == 86_725_304
    # the last stage (6 x 6 tokens) is one window: table (2 * 6 - 1)^2 rows, no shift mask
    table = params["stages_3"]["blocks_1"]["attn"]["relative_position_bias_table"]
    assert table.shape == (121, 32)


def test_patch_merging_concatenates_neighbours_in_the_official_order():
    # SimMIM PatchMerging: cat(x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2])
    merge = swin.PatchMerging()
    x = jnp.asarray(np.random.default_rng(3).standard_normal((1, 4, 6, 2)), jnp.float32)
    params = _random_params(merge, x)
    got = merge.apply(params, x)
    p, xn = params["params"], np.asarray(x)
    cat = np.concatenate(
        [xn[:, 0::2, 0::2], xn[:, 1::2, 0::2], xn[:, 0::2, 1::2], xn[:, 1::2, 1::2]], -1
    )
    normed = (cat - cat.mean(-1, keepdims=True)) / np.sqrt(cat.var(-1, keepdims=True) + 1e-5)
    expected = (normed * p["norm"]["scale"] + p["norm"]["bias"]) @ p["reduction"]["kernel"]
    assert got.shape == (1, 2, 3, 4)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def _tiny(**kw):
    model = swin.SwinTransformer(**TINY, **kw)
    images = jnp.asarray(np.random.default_rng(1).standard_normal((2, 32, 32, 3)), jnp.float32)
    return model, images, _random_params(model, images)


def test_tiny_forward_shape_under_jit_and_pooling():
    model, images, params = _tiny()
    out = jax.jit(model.apply)(params, images)
    assert (model.stride, model.num_features) == (8, 32)
    assert out.shape == (2, 4, 4, 32)
    assert bool(jnp.isfinite(out).all())
    np.testing.assert_allclose(swin.global_pool(out), out.mean(axis=(1, 2)))
    assert swin.global_pool(out).shape == (2, 32)


def test_masked_patches_do_not_reach_the_output():
    model, images, params = _tiny()
    apply = jax.jit(model.apply)
    full = jnp.ones((2, 64), bool)
    other = jax.random.normal(jax.random.key(5), images.shape)
    np.testing.assert_allclose(apply(params, images, full), apply(params, other, full), atol=1e-6)

    mask = jnp.zeros((2, 64), bool).at[:, 0].set(True)  # patch 0 = pixels [0:4, 0:4]
    base = apply(params, images, mask)
    in_masked = images.at[:, :4, :4].add(1.0)
    in_visible = images.at[:, :4, 4:8].add(1.0)  # patch 1
    np.testing.assert_allclose(apply(params, in_masked, mask), base, atol=1e-6)
    assert np.abs(apply(params, in_visible, mask) - base).max() > 1e-3


def test_drop_path_acts_only_in_training():
    block = swin.SwinBlock(num_heads=2, window=4, shift=0, drop_path=0.5)
    x = jnp.asarray(np.random.default_rng(2).standard_normal((8, 4, 4, 8)), jnp.float32)
    params = _random_params(block, x)
    a = block.apply(params, x, train=True, rngs={"dropout": jax.random.key(2)})
    b = block.apply(params, x, train=True, rngs={"dropout": jax.random.key(3)})
    assert not np.allclose(a, b)
    c = block.apply(params, x, rngs={"dropout": jax.random.key(2)})
    d = block.apply(params, x, rngs={"dropout": jax.random.key(3)})
    np.testing.assert_array_equal(c, d)
