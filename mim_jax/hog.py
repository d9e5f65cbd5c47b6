"""MaskFeat's HOG prediction target (SlowFast `HOGLayerC`), in pure JAX on NHWC images.

Official facts followed (facebookresearch/SlowFast slowfast/models/operators.py `HOGLayerC`,
slowfast/models/masked.py `MaskMViT._get_hog_label_2d`):
- HOG is computed on the *normalized* image the model sees (mean/std normalised per channel).
  It is invariant to that per-channel affine map anyway: the mean cancels in the gradient and
  the positive scale cancels in the per-cell L2 normalisation.
- Each channel separately: reflect-pad by 1, Sobel cross-correlation, magnitude sqrt(gx^2+gy^2),
  phase atan2(gx, gy) (column-derivative first), hard bin floor(phase / pi * nbins) mod nbins
  (unsigned orientation), optional Gaussian weighting of magnitudes, sum over cell x cell
  pixels, then L2 normalisation over the bins of each (cell, channel) (`F.normalize`, eps 1e-12).
- Per patch, the target is flattened in (channel, bin, cell_row, cell_col) order: 2x2 cells x
  9 bins x 3 channels = 108 values for 16-px patches and 8-px cells.
"""

import einops
import jax
import jax.numpy as jnp
import numpy as np

NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize default eps


def _check_divisible(size: int, by: int, what: str) -> None:
    if by <= 0 or size % by:
        raise ValueError(f"{what} ({size}) must be a positive multiple of {by}")


def _gradients(x: jax.Array, gradient: str) -> tuple[jax.Array, jax.Array]:
    """Per-channel (gx, gy) of [B, H, W, C] with reflect padding, each [B, H, W, C].

    gx is the column (width) derivative, gy the row derivative, both with the official sign
    (x[before] - x[after]): SlowFast's Sobel weight_x = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
    applied as a cross-correlation, weight_y its transpose.
    """
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")  # [B, H+2, W+2, C]
    if gradient == "sobel":
        dcol = xp[:, :, :-2] - xp[:, :, 2:]  # [B, H+2, W, C]
        drow = xp[:, :-2] - xp[:, 2:]  # [B, H, W+2, C]
        gx = dcol[:, :-2] + 2.0 * dcol[:, 1:-1] + dcol[:, 2:]
        gy = drow[:, :, :-2] + 2.0 * drow[:, :, 1:-1] + drow[:, :, 2:]
    elif gradient == "central":
        gx = xp[:, 1:-1, :-2] - xp[:, 1:-1, 2:]
        gy = xp[:, :-2, 1:-1] - xp[:, 2:, 1:-1]
    else:
        raise ValueError(f"gradient must be 'sobel' or 'central', got {gradient!r}")
    return gx, gy


def gaussian_kernel(size: int) -> np.ndarray:
    """[size, size] Gaussian, std size // 2, sum 1 (SlowFast slowfast/models/utils.py get_gkern)."""
    n = np.arange(size, dtype=np.float64)
    n = (n - n.mean()) / (size // 2)
    g = np.exp(-0.5 * n**2)
    g2 = np.outer(g, g)
    return (g2 / g2.sum()).astype(np.float32)


def hog_cells(
    images: jax.Array,
    nbins: int = 9,
    cell: int = 8,
    gaussian_window: int = 0,
    gradient: str = "sobel",
) -> jax.Array:
    """L2-normalised per-channel orientation histograms: [B, H, W, C] -> [B, H/c, W/c, C, nbins].

    `gaussian_window=0` (no weighting) is what SlowFast's MaskMViT uses; mmpretrain uses 16.
    A window of g weights magnitudes by a g x g Gaussian (std g // 2) tiled over the image.
    """
    _, h, w, _ = images.shape
    _check_divisible(h, cell, "image height")
    _check_divisible(w, cell, "image width")
    x = jax.lax.stop_gradient(images).astype(jnp.float32)
    gx, gy = _gradients(x, gradient)
    magnitude = jnp.sqrt(gx**2 + gy**2)  # [B, H, W, C]
    # Official argument order atan2(gx, gy); phase / pi * nbins lies in [-nbins, nbins].
    phase = jnp.arctan2(gx, gy) / jnp.pi * nbins
    bins = jnp.mod(jnp.floor(phase).astype(jnp.int32), nbins)  # [B, H, W, C]
    if gaussian_window:
        _check_divisible(h, gaussian_window, "image height")
        _check_divisible(w, gaussian_window, "image width")
        kern = np.tile(
            gaussian_kernel(gaussian_window), (h // gaussian_window, w // gaussian_window)
        )
        magnitude = magnitude * kern[None, :, :, None]
    votes = jnp.where(bins[..., None] == jnp.arange(nbins), magnitude[..., None], 0.0)
    hist = einops.reduce(
        votes, "b (h i) (w j) c k -> b h w c k", "sum", i=cell, j=cell
    )  # [B, H/c, W/c, C, nbins]
    norm = jnp.sqrt(jnp.sum(hist**2, axis=-1, keepdims=True))
    return hist / jnp.maximum(norm, NORMALIZE_EPS)


def hog_patch_targets(
    images: jax.Array,
    patch_size: int,
    nbins: int = 9,
    cell: int = 8,
    gaussian_window: int = 0,
    gradient: str = "sobel",
) -> jax.Array:
    """Per-patch HOG targets [B, H, W, C] -> [B, L, (p/c)^2 * C * nbins], row-major patches
    (as `patchify`), each flattened as (channel, bin, cell_row, cell_col) like SlowFast's
    `_get_hog_label_2d` (flatten C and bins, then unfold rows and columns of cells)."""
    _, h, w, _ = images.shape
    _check_divisible(patch_size, cell, "patch_size")
    _check_divisible(h, patch_size, "image height")
    _check_divisible(w, patch_size, "image width")
    cells = hog_cells(
        images, nbins=nbins, cell=cell, gaussian_window=gaussian_window, gradient=gradient
    )
    n = patch_size // cell
    return einops.rearrange(cells, "b (h i) (w j) c k -> b (h w) (c k i j)", i=n, j=n)
