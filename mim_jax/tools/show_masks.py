"""The masking gallery: one PNG per mask generator, each showing samples on a 14x14 patch
grid (ViT-B/16 at 224 px), visible patches light and masked ones dark.

    python -m mim_jax.tools.show_masks --out=docs/masks

Generators: random (MAE, 75%), block-wise (BEiT/CAE, 98 of 196), SimMIM (32-px cells at
60%, ViT patch 16), and ColorMAE's red / blue / green / purple noise (75%), plus video tube
masking (VideoMAE, 90%) and Audio-MAE's time/frequency masking for reference.
"""

from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw

from mim_jax import color_noise, masking

_OUT = flags.DEFINE_string("out", None, "Directory for the PNGs.")
_SAMPLES = flags.DEFINE_integer("samples", 8, "Masks per generator.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")

GRID = (14, 14)
CELL = 10  # pixels per patch in the PNG
VISIBLE, MASKED, LINE = (236, 236, 236), (48, 54, 64), (255, 255, 255)


def generators() -> dict[str, tuple[str, Callable[[jax.Array, int], jax.Array]]]:
    """name -> (title, fn(key, n) -> bool [n, 14*14], True = masked)."""
    length = GRID[0] * GRID[1]

    def random(key, n):
        return masking.random_masking(key, n, length, 0.75).mask.astype(bool)

    def block(key, n):
        return masking.block_mask_batch(key, n, GRID, 98, min_patches=16)

    def simmim(key, n):
        return masking.simmim_mask(key, n, (224, 224), 32, 16, 0.6)

    def tube(key, n):  # one frame of a 8x14x14 tube mask: the same in every frame
        return masking.tube_mask(jax.random.uniform(key, (n, length)), 8, 0.9)[:, :length]

    def time_freq(key, n):
        kt, kf = jax.random.split(key)
        noise_t, noise_f = jax.random.uniform(kt, (n, 14)), jax.random.uniform(kf, (n, 14))
        return masking.time_freq_mask(noise_t, noise_f, 0.25, 0.25)[0]

    out = {
        "random": ("random 75% (MAE)", random),
        "block": ("block-wise 98/196 (BEiT, CAE)", block),
        "simmim": ("SimMIM 32-px cells, 60%", simmim),
    }
    for color in color_noise.COLORS:
        bank = jnp.asarray(color_noise.load_bank(color, 64, 64))  # the ColorMAE config's

        def colored(key, n, bank=bank):
            return color_noise.color_noise_masking(bank, key, n, GRID, 0.75).mask.astype(bool)

        out[f"colormae_{color}"] = (f"ColorMAE {color} noise 75%", colored)
    out["tube"] = ("tube 90% (VideoMAE, any frame)", tube)
    out["time_freq"] = ("time/frequency 25%+25% (Audio-MAE)", time_freq)
    return out


def render(title: str, masks: np.ndarray) -> Image.Image:
    """bool [n, 14*14] -> one row of n grids under a title."""
    n = len(masks)
    h, w = GRID[0] * CELL, GRID[1] * CELL
    gap, top = 6, 18
    img = Image.new("RGB", (n * (w + gap) + gap, h + top + gap), LINE)
    ImageDraw.Draw(img).text((gap, 3), title, fill=(0, 0, 0))
    for i, mask in enumerate(masks):
        tile = np.where(mask.reshape(GRID)[..., None], MASKED, VISIBLE).astype(np.uint8)
        tile = np.repeat(np.repeat(tile, CELL, 0), CELL, 1)
        tile[::CELL], tile[:, ::CELL] = LINE, LINE  # patch borders
        img.paste(Image.fromarray(tile), (gap + i * (w + gap), top))
    return img


def write_gallery(out: Path, samples: int = 8, seed: int = 0) -> list[Path]:
    """Writes <out>/<generator>.png for every generator; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    key = jax.random.PRNGKey(seed)
    for i, (name, (title, fn)) in enumerate(generators().items()):
        masks = np.asarray(fn(jax.random.fold_in(key, i), samples))
        path = out / f"{name}.png"
        render(title, masks).save(path)
        paths.append(path)
    return paths


def main(argv):
    del argv
    if not _OUT.value:
        raise app.UsageError("--out=DIR is required")
    for path in write_gallery(Path(_OUT.value), _SAMPLES.value, _SEED.value):
        print(path)


if __name__ == "__main__":
    app.run(main)
