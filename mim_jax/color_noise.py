"""ColorMAE's data-independent masks: banks of red / blue / green / purple noise patterns
and the per-batch windows cut from them.

Filters (paper / project page carloshinojosa.me/project/colormae): from white noise W,
red = G_s * W (low-pass), blue = W - G_s * W (high-pass), green = G_s1 * W - G_s2 * W with
s1 < s2 (band-pass, a difference of Gaussians) and purple = W - green (band-stop); each
pattern is then standardised. Here W is i.i.d. Gaussian and the blurs are periodic, done
in the Fourier domain, so every pattern is a stationary field on a torus. One pattern pixel
is one patch. The official bank is a download (OSF) with no generator in the repo; our
widths put green's peak at the reported ~0.185 cycles/patch and the rest as follows:

* red, s = 2.5: the amplitude exp(-2 pi^2 s^2 f^2) halves at f ~ 0.075 cycles/patch, so
  visible regions are blobs several patches wide;
* blue, s = 0.75: 1 - exp(...) reaches 0.5 at f ~ 0.25, little power below ~0.1;
* green, (s1, s2) = (0.75, 1.75): the response peaks at f* = 0.185 (a period of ~5.4
  patches; measured on 512 patterns of 256 x 256: 0.185 by a parabola through the log
  radial power), 0 at DC and 11% of the peak amplitude at Nyquist;
* purple = 1 - green: the notch is at the same 0.185 (measured 0.184), with 0.19 of the
  power at DC.

Windows follow the official `models/utils/masking_generator.py` (`ColorMasking`): one random
patch-grid crop and random horizontal / vertical flips shared by the batch, each window
divided by its maximum, and `ColorMAEViT.color_masking` keeps the highest values visible
(`argsort(descending=True)`; no "lowest" option exists there).
"""

import os
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from mim_jax import masking

COLORS = ("red", "blue", "green", "purple")
RED_SIGMA = 2.5  # low-pass: amplitude halves at f ~ 0.075 cycles/patch
BLUE_SIGMA = 0.75  # high-pass: amplitude reaches 0.5 at f ~ 0.25
GREEN_SIGMAS = (0.75, 1.75)  # difference of Gaussians peaking at f ~ 0.185
BANK_VERSION = 1  # bump when the generator changes: cached banks are keyed by it
_CHUNK = 256  # patterns filtered at a time, to bound the FFT's memory


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


def green_peak_frequency() -> float:
    """Radial frequency (cycles/patch) where the green response peaks (purple's notch):
    d/df [exp(-a s1^2) - exp(-a s2^2)] = 0, a = 2 pi^2 f^2."""
    s1, s2 = GREEN_SIGMAS
    a = 2.0 * np.log(s2 / s1) / (s2**2 - s1**2)
    return float(np.sqrt(a / 2.0) / np.pi)


def make_bank(color: str, num_patterns: int, size: int, seed: int = 0) -> np.ndarray:
    """[num_patterns, size, size] float32 patterns of `color` noise, each standardised.

    Deterministic in `seed`; pattern i depends only on (seed, i, size), so a larger bank
    extends a smaller one.
    """
    _check_color(color)
    if num_patterns < 1 or size < 2:
        raise ValueError(f"need num_patterns >= 1 and size >= 2, got {num_patterns}, {size}")
    rng = np.random.default_rng(seed)
    response = color_response(color, size)
    bank = np.empty((num_patterns, size, size), np.float32)
    for start in range(0, num_patterns, _CHUNK):
        n = min(_CHUNK, num_patterns - start)
        white = rng.standard_normal((n, size, size))  # same stream as one big draw
        noise = np.fft.ifft2(np.fft.fft2(white) * response).real
        noise -= noise.mean(axis=(1, 2), keepdims=True)
        noise /= noise.std(axis=(1, 2), keepdims=True) + 1e-12
        bank[start : start + n] = noise
    return bank


def _cache_path(color: str, num_patterns: int, size: int, seed: int, cache_dir: str | None) -> Path:
    root = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "mim_jax" / "color_noise"
    return root / f"{color}_{num_patterns}x{size}x{size}_seed{seed}_v{BANK_VERSION}.npy"


def _read_cached(path: Path, shape: tuple[int, int, int]) -> np.ndarray | None:
    """The cached bank, or None (with a warning) when it is unreadable or not `shape`."""
    try:
        bank = np.load(path)
    except (OSError, ValueError, EOFError) as e:
        logging.warning("Color noise cache %s is unreadable (%s); regenerating.", path, e)
        return None
    if bank.shape != shape or bank.dtype != np.float32 or not np.isfinite(bank).all():
        logging.warning(
            "Color noise cache %s holds %s %s, not finite float32 %s; regenerating.",
            path,
            bank.dtype,
            bank.shape,
            shape,
        )
        return None
    return bank


def _write_atomic(path: Path, bank: np.ndarray) -> None:
    """np.save to a temporary file in the same folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, bank)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_bank(
    color: str, num_patterns: int, size: int, seed: int = 0, cache_dir: str | None = None
) -> np.ndarray:
    """`make_bank`'s [num_patterns, size, size] bank, generated at first use and cached as
    .npy under `cache_dir` (default ~/.cache/mim_jax/color_noise); a cached file that is
    unreadable or of the wrong shape is regenerated."""
    _check_color(color)
    path = _cache_path(color, num_patterns, size, seed, cache_dir)
    if path.exists():
        bank = _read_cached(path, (num_patterns, size, size))
        if bank is not None:
            return bank
    bank = make_bank(color, num_patterns, size, seed)
    _write_atomic(path, bank)
    return bank


def crop_windows(bank: jax.Array, key: jax.Array, batch: int, grid: tuple[int, int]) -> jax.Array:
    """bank [P, M, N] -> windows [batch, gh * gw], each divided by its maximum.

    Samples go in groups of P (one official call on one GPU); a group shares one random
    crop offset and random h / v flips (official `extract_windows`) and takes P consecutive
    patterns. The official's sample i takes pattern i, so a batch smaller than the bank
    only ever sees its first `batch` patterns; here a group starts at a random pattern
    (cyclically), which keeps the patterns of a group distinct and uses the whole bank.
    """
    num, height, width = bank.shape
    gh, gw = grid
    if gh < 1 or gw < 1 or gh > height or gw > width:
        raise ValueError(f"patch grid {grid} must fit in the noise patterns ({height}x{width})")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    groups = -(-batch // num)
    take = min(batch, num)

    def one_group(k: jax.Array) -> jax.Array:  # [take, gh, gw]
        k_start, k_top, k_left, k_h, k_v = jax.random.split(k, 5)
        top = jax.random.randint(k_top, (), 0, height - gh + 1)
        left = jax.random.randint(k_left, (), 0, width - gw + 1)
        win = jax.lax.dynamic_slice(bank, (0, top, left), (num, gh, gw))  # [P, gh, gw]
        start = jax.random.randint(k_start, (), 0, num)
        win = win[(start + jnp.arange(take)) % num]
        # torchvision RandomHorizontalFlip flips width, RandomVerticalFlip height, p = 0.5
        win = jnp.where(jax.random.bernoulli(k_h), win[:, :, ::-1], win)
        return jnp.where(jax.random.bernoulli(k_v), win[:, ::-1, :], win)

    windows = jax.vmap(one_group)(jax.random.split(key, groups))  # [G, take, gh, gw]
    windows = windows.reshape(groups * take, gh * gw)[:batch]
    # official NormalizeBySliceMax; a window whose max is <= 0 (red noise, ~0.1% of 14x14
    # windows) would have its ranking inverted or become NaN there, so it is left as is
    peak = windows.max(axis=1, keepdims=True)
    return windows / jnp.where(peak > 0, peak, 1.0)


def color_noise_masking(
    bank: jax.Array, key: jax.Array, batch: int, grid: tuple[int, int], mask_ratio: float
) -> masking.MaskSpec:
    """ColorMAE masks [batch, gh * gw]: the `num_kept(L, ratio)` highest values of each
    window stay visible, highest first (official `argsort(descending=True)`), which is
    MAE's ascending argsort masking of noise = -window."""
    return masking.mask_from_noise(-crop_windows(bank, key, batch, grid), mask_ratio)
