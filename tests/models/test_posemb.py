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
