"""Fixed sine-cosine position embeddings, laid out exactly as MAE's `util/pos_embed.py`."""

import numpy as np


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """[M] positions -> [M, dim]: sin(pos * w_i) then cos(pos * w_i), w_i = 10000^(-2i/dim)."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dim, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    angles = np.outer(positions.reshape(-1).astype(np.float64), omega)  # [M, dim/2]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d(
    dim: int, grid: tuple[int, int], cls_token: bool = False, rows_first: bool = False
) -> np.ndarray:
    """[(1+)h*w, dim] float32 table for a row-major h x w patch grid.

    As in MAE's code, the first half of the channels encodes the column (x) index and the
    second half the row (y) index; `rows_first` swaps them (CAE's
    `build_2d_sincos_position_embedding`). With `cls_token` a zero row is prepended.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs dim divisible by 4, got {dim}")
    h, w = grid
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")  # [h, w] each
    halves = [sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)]
    table = np.concatenate(halves[::-1] if rows_first else halves, axis=1)
    if cls_token:
        table = np.concatenate([np.zeros((1, dim)), table], axis=0)
    return table.astype(np.float32)


def sinusoid_table(num_positions: int, dim: int) -> np.ndarray:
    """[N, dim] float32 1-D table of the Transformer paper, sin on even and cos on odd
    channels (interleaved), angle = pos / 10000^(2*(j//2)/dim): VideoMAE's
    `get_sinusoid_encoding_table`, over the flattened (t, h, w) token sequence."""
    j = np.arange(dim)
    angles = np.arange(num_positions, dtype=np.float64)[:, None] / np.power(
        10000, 2 * (j // 2) / dim
    )
    table = np.where(j % 2 == 0, np.sin(angles), np.cos(angles))
    return table.astype(np.float32)


def bicubic_matrix(in_size: int, out_size: int, a: float = -0.75) -> np.ndarray:
    """[out, in] weights of torch's bicubic interpolation along one axis
    (`F.interpolate(mode="bicubic", align_corners=False)`: cubic convolution with
    a = -0.75, source index (i + 0.5) * in / out - 0.5, border samples repeated)."""

    def cubic(x):
        x = np.abs(x)
        near = ((a + 2) * x - (a + 3)) * x * x + 1
        far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
        return np.where(x <= 1, near, np.where(x < 2, far, 0.0))

    src = (np.arange(out_size) + 0.5) * in_size / out_size - 0.5
    base = np.floor(src).astype(int)
    t = src - base
    m = np.zeros((out_size, in_size))
    for offset in (-1, 0, 1, 2):
        idx = np.clip(base + offset, 0, in_size - 1)
        np.add.at(m, (np.arange(out_size), idx), cubic(t - offset))
    return m


def resample(
    table: np.ndarray, old_grid: tuple[int, int], new_grid: tuple[int, int], extra: int = 1
) -> np.ndarray:
    """A learned position table [..., extra + h*w, D] resampled to a new grid with
    torch's bicubic interpolation, the `extra` leading (cls) rows kept: MAE
    `util/pos_embed.interpolate_pos_embed`, for fine-tuning at another resolution."""
    table = np.asarray(table)
    (h, w), (nh, nw) = old_grid, new_grid
    lead, grid = table[..., :extra, :], table[..., extra:, :]
    if grid.shape[-2] != h * w:
        raise ValueError(f"position table has {grid.shape[-2]} grid rows, not {h}x{w}")
    grid = grid.reshape(*grid.shape[:-2], h, w, grid.shape[-1]).astype(np.float64)
    rows, cols = bicubic_matrix(h, nh), bicubic_matrix(w, nw)
    out = np.einsum("ih,jw,...hwd->...ijd", rows, cols, grid)
    out = out.reshape(*out.shape[:-3], nh * nw, out.shape[-1]).astype(table.dtype)
    return np.concatenate([lead, out], axis=-2)
