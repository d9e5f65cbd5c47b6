"""ColorMAE: Exploring Data-Independent Masking Strategies in Masked AutoEncoders
(Hinojosa, Liu, Ghanem, ECCV 2024).

MAE with masks cut from filtered noise instead of uniform noise (official
`carlosh93/ColorMAE` `models/utils/masking_generator.py`): each batch takes one random
patch-grid-sized crop (and random flips) of a bank of red / blue / green / purple noise
patterns, sample i gets pattern i, and the highest-valued quarter of each window stays
visible. That is MAE's argsort masking with noise = -window, so everything else (encoder,
decoder, loss, recipe) is MAE's. The bank is made by our own filters (`mim_jax.color_noise`)
at first use and cached; the official one is a download.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mim_jax import color_noise
from mim_jax.methods import base, mae


@functools.lru_cache(maxsize=8)
def _bank(color: str, patterns: int, size: int) -> np.ndarray:
    """The cached noise bank [patterns, size, size], read once per process."""
    return color_noise.load_bank(color, patterns, size)


class ColorMaskedAutoencoder(mae.MaskedAutoencoder):
    """MAE whose masking noise is a colored-noise window (negated: high values visible)."""

    color: str = "green"
    noise_patterns: int = 1024  # bank size; sample i of a batch takes pattern i mod this
    noise_size: int = 64  # each pattern is noise_size x noise_size patches

    def draw_noise(self, batch: int) -> jax.Array:
        bank = jnp.asarray(_bank(self.color, self.noise_patterns, self.noise_size))
        key = self.make_rng("masking")
        return -color_noise.crop_windows(bank, key, batch, self.grid)


def from_config(config: ml_collections.ConfigDict) -> mae.MAE:
    """ColorMAE from `config.model` plus the input geometry in `config.data`."""
    model = base.build_model(ColorMaskedAutoencoder, config)
    if model.color not in color_noise.COLORS:
        raise ValueError(f"config.model.color={model.color!r}; valid: {color_noise.COLORS}")
    if max(model.grid) > model.noise_size:
        raise ValueError(
            f"config.model.noise_size={model.noise_size} is smaller than the patch grid "
            f"{model.grid}"
        )
    return mae.MAE(model)
