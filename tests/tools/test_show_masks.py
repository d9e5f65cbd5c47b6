"""The masking gallery writes one PNG per generator, showing masks of the right density."""

import jax
import numpy as np
from PIL import Image

from mim_jax.tools import show_masks


def test_gallery_has_one_png_per_generator(tmp_path):
    paths = show_masks.write_gallery(tmp_path, samples=3, seed=1)
    names = sorted(p.stem for p in paths)
    assert names == sorted(
        ["random", "block", "simmim", "tube", "time_freq"]
        + [f"colormae_{c}" for c in ("red", "blue", "green", "purple")]
    )
    for path in paths:
        assert Image.open(path).size[0] > 3 * 14 * show_masks.CELL


def test_each_generator_masks_its_share_of_the_grid():
    expected = {"random": 147, "block": 98, "simmim": 120, "colormae_green": 147, "tube": 176}
    gens = show_masks.generators()
    for name, count in expected.items():
        masks = np.asarray(gens[name][1](jax.random.PRNGKey(0), 4))
        assert masks.shape == (4, 196) and (masks.sum(1) == count).all(), name
