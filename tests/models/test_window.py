import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mim_jax.models import window


def test_partition_and_reverse_are_inverse_and_windows_are_row_major():
    x = jnp.arange(2 * 8 * 4 * 3, dtype=jnp.float32).reshape(2, 8, 4, 3)
    parts = window.window_partition(x, (4, 2))  # [2 * 4, 8, 3]
    assert parts.shape == (8, 8, 3)
    np.testing.assert_array_equal(parts[1, 0], x[0, 0, 2])  # window (0, 1) starts at col 2
    np.testing.assert_array_equal(parts[2, 0], x[0, 4, 0])  # window (1, 0) starts at row 4
    np.testing.assert_array_equal(parts[0, 2], x[0, 1, 0])  # tokens row-major inside
    np.testing.assert_array_equal(window.window_reverse(parts, (4, 2), (8, 4)), x)


def test_shift_mask_on_the_audiomae_grid_separates_only_the_wrapped_rows():
    # 64 x 8 grid, 4 x 4 windows, shift (2, 0): only the last window row (windows 30 and
    # 31) mixes rows 60-61 with the wrapped-around rows 62-63.
    mask = window.shift_mask((64, 8), (4, 4), (2, 0))
    assert mask.shape == (32, 16, 16)
    assert set(np.unique(mask)) == {0.0, window.MASK_VALUE}
    assert np.flatnonzero(mask.reshape(32, -1).min(axis=1) < 0).tolist() == [30, 31]
    blocked = mask[30] < 0
    assert blocked[:8, 8:].all() and blocked[8:, :8].all()
    assert not blocked[:8, :8].any() and not blocked[8:, 8:].any()


def test_log_relative_coords():
    coords = window.log_relative_coords((4, 4))
    assert coords.shape == (256, 2)
    np.testing.assert_allclose(coords[1], [0.0, -np.log(2.0)], rtol=1e-6)  # token 0 vs 1
    np.testing.assert_allclose(coords[4 * 16], [np.log(2.0), 0.0], rtol=1e-6)  # 4 vs 0
    np.testing.assert_array_equal(coords[::17], 0.0)  # a token with itself


def test_effective_window_clamps_to_small_grids():
    assert window.effective_window((8, 2), (4, 4), (2, 2)) == ((4, 2), (2, 0))
    with pytest.raises(ValueError, match="not divisible"):
        window.effective_window((6, 8), (4, 4), (0, 0))


def _direct_block_attention(params, x, grid, win, shift, heads):
    """The same attention as one masked [L, L] computation over the whole grid: a token
    attends to the tokens of its own (rolled) window, with the position bias of their
    in-window offsets and -100 across shifted regions; no partitioning."""
    b, length, c = x.shape
    p = params["attn"]
    h, w = grid
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    # each token's position in the rolled grid (where it is attended from)
    rolled_r, rolled_c = (rows - shift[0]) % h, (cols - shift[1]) % w
    win_id = (rolled_r // win[0]) * (w // win[1]) + rolled_c // win[1]
    inner = (rolled_r % win[0]) * win[1] + rolled_c % win[1]
    regions = []
    for n, ws, s, pos in ((h, win[0], shift[0], rolled_r), (w, win[1], shift[1], rolled_c)):
        r = np.zeros(n, int)
        if s:
            r[n - ws : n - s], r[n - s :] = 1, 2
        regions.append(r[pos])
    region = (regions[0] * 3 + regions[1]).reshape(-1)
    win_id, inner = win_id.reshape(-1), inner.reshape(-1)

    qkv = x @ p["qkv"]["kernel"] + p["qkv"]["bias"]
    q, k, v = np.moveaxis(np.asarray(qkv).reshape(b, length, 3, heads, c // heads), 2, 0)
    qn = q / np.linalg.norm(q, axis=-1, keepdims=True)
    kn = k / np.linalg.norm(k, axis=-1, keepdims=True)
    logits = (
        np.einsum("bihd,bjhd->bhij", qn, kn) / np.maximum(np.asarray(p["tau"]), 0.01)[:, None, None]
    )
    rel = window.log_relative_coords(win)
    hidden = np.maximum(rel @ p["meta_fc1"]["kernel"] + p["meta_fc1"]["bias"], 0)
    table = np.asarray(hidden @ p["meta_fc2"]["kernel"] + p["meta_fc2"]["bias"])  # [N*N, h]
    n = win[0] * win[1]
    bias = table[inner[:, None] * n + inner[None, :]].transpose(2, 0, 1)  # [h, L, L]
    logits = logits + bias + np.where(region[:, None] != region[None, :], -100.0, 0.0)
    logits = np.where(win_id[:, None] == win_id[None, :], logits, -np.inf)
    attn = np.exp(logits - logits.max(-1, keepdims=True))
    attn /= attn.sum(-1, keepdims=True)
    out = np.einsum("bhij,bjhd->bihd", attn, v).reshape(b, length, c)
    return out @ p["proj"]["kernel"] + p["proj"]["bias"]


@pytest.mark.parametrize("shift", [(0, 0), (2, 0), (2, 2)])
def test_shifted_window_attention_equals_direct_masked_attention(shift):
    grid, win, heads, c = (8, 8), (4, 4), 2, 16
    block = window.CosineWindowBlock(heads, grid, win, shift, meta_hidden=32)
    x = jax.random.normal(jax.random.key(0), (2, 64, c))
    params = block.init(jax.random.key(1), x)["params"]
    # random tau and biases, so every term of the logits matters
    params = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.key(2), a.shape), params)
    got = block.apply({"params": params}, x)

    y = _direct_block_attention(jax.device_get(params), np.asarray(x), grid, win, shift, heads)

    def ln(z, s):
        return (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-6) * s[
            "scale"
        ] + s["bias"]

    x1 = np.asarray(x) + ln(y, params["norm1"])
    m = params["mlp"]
    hidden = jax.nn.gelu(x1 @ m["fc1"]["kernel"] + m["fc1"]["bias"], approximate=False)
    expected = x1 + ln(np.asarray(hidden @ m["fc2"]["kernel"] + m["fc2"]["bias"]), params["norm2"])
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4)


def test_meta_mlp_dropout_is_active_only_in_training():
    block = window.CosineWindowBlock(2, (4, 4), (4, 4), meta_hidden=16)
    x = jax.random.normal(jax.random.key(0), (1, 16, 8))
    params = block.init(jax.random.key(1), x)
    a = block.apply(params, x, train=True, rngs={"dropout": jax.random.key(2)})
    b = block.apply(params, x, train=True, rngs={"dropout": jax.random.key(3)})
    assert not np.allclose(a, b)
    c = block.apply(params, x, train=False, rngs={"dropout": jax.random.key(2)})
    d = block.apply(params, x, train=False, rngs={"dropout": jax.random.key(3)})
    np.testing.assert_array_equal(c, d)
