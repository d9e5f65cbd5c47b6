"""ColorMAE's data-independent masks: banks of red / blue / green / purple noise patterns
and the per-batch windows cut from them.

The filters are the paper's (project page): from white noise W, red = G_s * W (low-pass),
blue = W - G_s * W (high-pass), green = G_s1 * W - G_s2 * W (band-pass, s1 < s2) and
purple = W - green (band-stop), Gaussian blurs with periodic borders done in the Fourier
domain. One pattern pixel is one patch. The widths (the official bank is a download whose
widths are not published) place the features where the paper's spectra show them:
red's amplitude halves at ~0.075 cycles/patch, blue's rises through 0.5 at ~0.25, green
peaks at ~0.185 (a period of ~5.4 patches). Each pattern is standardised.

Windows follow the official `masking_generator.py`: one random crop of patch-grid size and
random horizontal / vertical flips shared by a call, sample i taking pattern i; the highest
values of each window stay visible. (The official divides each window by its maximum
first, which cannot change the ranking unless the maximum is <= 0, where it would invert
it; the raw values are ranked here.)
"""

import logging
import os
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mim_jax import masking

COLORS = ("red", "blue", "green", "purple")
RED_SIGMA = 2.5  # amplitude exp(-2 pi^2 s^2 f^2) halves at f ~ 0.075 cycles/patch
BLUE_SIGMA = 0.75  # 1 - exp(...) reaches 0.5 at f ~ 0.25
GREEN_SIGMAS = (0.75, 1.75)  # difference of Gaussians peaking at f ~ 0.185
BANK_VERSION = 1  # bump when the generator changes: cached banks are keyed by it


def _check_color(color: str) -> None:
    if color not in COLORS:
        raise ValueError(f"unknown noise color {color!r}; valid: {list(COLORS)}")


def gaussian_response(size: int, sigma: float) -> np.ndarray:
    """[size, size] Fourier response of a periodic Gaussian blur of std `sigma` pixels."""
    f = np.fft.fftfreq(size)
    f2 = f[:, None] ** 2 + f[None, :] ** 2
    return np.exp(-2.0 * np.pi**2 * sigma**2 * f2)


def color_response(color: str, size: int) -> np.ndarray:
    """[size, size] Fourier response of the filter that turns white noise into `color`."""
    _check_color(color)
    if color == "red":
        return gaussian_response(size, RED_SIGMA)
    if color == "blue":
        return 1.0 - gaussian_response(size, BLUE_SIGMA)
    weak, strong = (gaussian_response(size, s) for s in GREEN_SIGMAS)
    green = weak - strong
    return green if color == "green" else 1.0 - green


def make_bank(color: str, num_patterns: int, size: int, seed: int = 0) -> np.ndarray:
    """[num_patterns, size, size] float32 patterns of `color` noise, each standardised."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((num_patterns, size, size))
    noise = np.fft.ifft2(np.fft.fft2(white) * color_response(color, size)).real
    noise -= noise.mean(axis=(1, 2), keepdims=True)
    noise /= noise.std(axis=(1, 2), keepdims=True) + 1e-12
    return noise.astype(np.float32)


def _cache_path(color: str, num_patterns: int, size: int, seed: int, cache_dir) -> Path:
    root = Path(cache_dir or Path.home() / ".cache" / "mim_jax" / "color_noise")
    name = f"{color}_{num_patterns}x{size}x{size}_seed{seed}_v{BANK_VERSION}.npy"
    return root / name


def load_bank(
    color: str, num_patterns: int, size: int, seed: int = 0, cache_dir: str | None = None
) -> np.ndarray:
    """The bank of `make_bank`, generated at first use and cached as .npy (written
    atomically); a cached file that is unreadable or of the wrong shape is regenerated."""
    _check_color(color)
    path = _cache_path(color, num_patterns, size, seed, cache_dir)
    if path.exists():
        try:
            bank = np.load(path)
            if bank.shape == (num_patterns, size, size) and np.isfinite(bank).all():
                return bank.astype(np.float32)
            logging.warning("color noise cache %s has shape %s; regenerating", path, bank.shape)
        except (OSError, ValueError) as e:
            logging.warning("color noise cache %s is unreadable (%s); regenerating", path, e)
    bank = make_bank(color, num_patterns, size, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, bank)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return bank


def crop_windows(bank: jax.Array, key: jax.Array, batch: int, grid: tuple[int, int]):
    """bank [P, S, S] -> windows [batch, gh * gw]: sample i takes pattern i mod P; each
    group of P samples shares one random crop offset and random h / v flips (a group is
    one official call: one GPU's batch)."""
    num, size = bank.shape[0], bank.shape[1]
    gh, gw = grid
    if gh > size or gw > size:
        raise ValueError(f"patch grid {grid} is larger than the noise patterns ({size})")
    groups = -(-batch // num)

    def one_group(k):
        k_top, k_left, k_h, k_v = jax.random.split(k, 4)
        top = jax.random.randint(k_top, (), 0, size - gh + 1)
        left = jax.random.randint(k_left, (), 0, size - gw + 1)
        win = jax.lax.dynamic_slice(bank, (0, top, left), (num, gh, gw))
        win = jnp.where(jax.random.bernoulli(k_h), win[:, :, ::-1], win)
        return jnp.where(jax.random.bernoulli(k_v), win[:, ::-1, :], win)

    windows = jax.vmap(one_group)(jax.random.split(key, groups))  # [G, P, gh, gw]
    return windows.reshape(groups * num, gh * gw)[:batch]


def color_noise_masking(
    bank: jax.Array, key: jax.Array, batch: int, grid: tuple[int, int], mask_ratio: float
) -> masking.MaskSpec:
    """ColorMAE masks: the `int(L (1 - ratio))` highest values of each window stay visible
    (MAE's argsort masking of noise = -window)."""
    return masking.mask_from_noise(-crop_windows(bank, key, batch, grid), mask_ratio)
