import numpy as np
import pytest

from mim_jax.models import posemb


def test_table_layout_columns_then_rows():
    dim, grid = 8, (3, 4)
    table = posemb.sincos_2d(dim, grid, cls_token=True)
    assert table.shape == (1 + 12, dim) and table.dtype == np.float32
    np.testing.assert_array_equal(table[0], 0)
    omega = 1.0 / 10000 ** (np.arange(2) / 2.0)
    row, col = 2, 3  # token index 1 + row * 4 + col
    expected = np.concatenate(
        [np.sin(col * omega), np.cos(col * omega), np.sin(row * omega), np.cos(row * omega)]
    )
    np.testing.assert_allclose(table[1 + row * 4 + col], expected, rtol=1e-6)


def test_rejects_dims_not_divisible_by_four():
    with pytest.raises(ValueError, match="divisible by 4"):
        posemb.sincos_2d(6, (2, 2))


def test_sinusoid_table_matches_videomae():
    """get_sinusoid_encoding_table(1568, 384): interleaved sin/cos; row 1 as measured on
    the official code."""
    table = posemb.sinusoid_table(1568, 384)
    assert table.shape == (1568, 384) and table.dtype == np.float32
    np.testing.assert_allclose(
        table[1, :6], [0.84147, 0.54030, 0.81525, 0.57911, 0.78859, 0.61492], atol=1e-5
    )
    np.testing.assert_array_equal(table[0, 0::2], 0)  # sin(0)
    np.testing.assert_array_equal(table[0, 1::2], 1)  # cos(0)


def test_resample_to_the_same_grid_is_the_identity():
    table = np.random.default_rng(0).normal(size=(1, 1 + 14 * 14, 32)).astype(np.float32)
    np.testing.assert_allclose(posemb.resample(table, (14, 14), (14, 14)), table, atol=1e-6)


def test_bicubic_weights_match_torchs_kernel_by_hand():
    m = posemb.bicubic_matrix(4, 8)  # x2 upsampling: source index (i + 0.5) / 2 - 0.5
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-12)  # constants stay constant
    # output 1 samples source 0.25: t = 0.25, a = -0.75 weights on sources -1, 0, 1, 2
    a, t = -0.75, 0.25
    w = [
        ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
        ((a + 2) * t - (a + 3)) * t * t + 1,
        ((a + 2) * (1 - t) - (a + 3)) * (1 - t) ** 2 + 1,
        ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a,
    ]
    np.testing.assert_allclose(m[1], [w[0] + w[1], w[2], w[3], 0.0], atol=1e-12)  # -1 -> 0


def test_resample_keeps_the_cls_row_and_interpolates_rows_and_columns_separately():
    rng = np.random.default_rng(0)
    grid = rng.normal(size=(4, 4, 3))
    table = np.concatenate([np.full((1, 3), 7.0), grid.reshape(16, 3)])[None]  # [1, 17, 3]
    out = posemb.resample(table, (4, 4), (8, 6))
    assert out.shape == (1, 49, 3)
    np.testing.assert_array_equal(out[0, 0], 7.0)
    rows, cols = posemb.bicubic_matrix(4, 8), posemb.bicubic_matrix(4, 6)
    expected = np.einsum("ih,jw,hwd->ijd", rows, cols, grid).reshape(48, 3)
    np.testing.assert_allclose(out[0, 1:], expected, atol=1e-12)
