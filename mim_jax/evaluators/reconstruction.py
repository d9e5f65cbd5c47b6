"""PNG grids of reconstructions: images as one row per image and one column per view;
clips as strips, one row per (clip, view) with the frames side by side."""

from collections.abc import Sequence
from pathlib import Path

import ml_collections
import numpy as np
from PIL import Image, ImageDraw

from mim_jax.data import pipeline

MIN_CELL = 96  # small images (28 px) are upscaled by an integer factor to at least this


def grid_image(columns: dict[str, np.ndarray], pad: int = 2) -> Image.Image:
    """columns: title -> uint8 [B, H, W, C] (C = 1 or 3). Returns an RGB grid with titles."""
    first = next(iter(columns.values()))
    b, h, w = first.shape[:3]
    scale = max(1, -(-MIN_CELL // max(h, w)))
    ch, cw = h * scale, w * scale
    header = 14
    grid = Image.new(
        "RGB", (len(columns) * (cw + pad) + pad, header + b * (ch + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(grid)
    for col, (title, images) in enumerate(columns.items()):
        x0 = pad + col * (cw + pad)
        draw.text((x0, 1), title[: max(4, cw // 6)], fill="black")
        for row in range(b):
            image = images[row]
            image = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
            tile = Image.fromarray(image).resize((cw, ch), Image.Resampling.NEAREST)
            grid.paste(tile, (x0, header + pad + row * (ch + pad)))
    return grid


def strip_image(views: dict[str, np.ndarray], pad: int = 2, gap: int = 6) -> Image.Image:
    """views: title -> uint8 clips [B, T, H, W, C]. For each clip, one row per view (its
    title on the left) with the T frames side by side; clips are separated by a gap."""
    first = next(iter(views.values()))
    b, t, h, w = first.shape[:4]
    scale = max(1, -(-MIN_CELL // 2 // max(h, w)))  # strips are wide: half the image cell
    ch, cw = h * scale, w * scale
    label = 8 + 6 * max(len(k) for k in views)
    rows = b * len(views)
    width = label + t * (cw + pad) + pad
    grid = Image.new("RGB", (width, rows * (ch + pad) + (b - 1) * gap + pad), "white")
    draw = ImageDraw.Draw(grid)
    y = pad
    for clip in range(b):
        for title, clips in views.items():
            draw.text((2, y + ch // 2 - 5), title, fill="black")
            for frame in range(t):
                image = clips[clip, frame]
                image = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
                tile = Image.fromarray(image).resize((cw, ch), Image.Resampling.NEAREST)
                grid.paste(tile, (label + frame * (cw + pad), y))
            y += ch + pad
        y += gap
    return grid


def spectrogram_views(views: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Normalised spectrograms [B, T, F, 1] -> uint8 [B, F, T, 1] pictures (frequency up,
    time to the right), every view of an example on the scale of its first view (the 1st
    to 99th percentile of the original mapped to black..white)."""
    first = np.asarray(next(iter(views.values())), np.float32)
    lo = np.percentile(first, 1, axis=(1, 2, 3), keepdims=True)
    hi = np.percentile(first, 99, axis=(1, 2, 3), keepdims=True)
    out = {}
    for title, x in views.items():
        x = (np.asarray(x, np.float32) - lo) / np.maximum(hi - lo, 1e-6)
        x = np.clip(np.round(x * 255), 0, 255).astype(np.uint8)
        out[title] = x.transpose(0, 2, 1, 3)[:, ::-1]  # [B, F, T, 1], low frequencies at the bottom
    return out


def picture(columns: dict[str, np.ndarray]) -> Image.Image:
    """The views as an image grid ([B, H, W, C]) or clip strips ([B, T, H, W, C])."""
    clips = next(iter(columns.values())).ndim == 5
    return strip_image(columns) if clips else grid_image(columns)


def render(
    views: dict[str, np.ndarray], order: Sequence[str], data: ml_collections.ConfigDict
) -> Image.Image:
    """A method's `reconstruct` views (normalised, in `order`) as the trainer draws them:
    uint8 images or clips, or spectrogram pictures when `data.num_mel_bins`."""
    views = {k: np.asarray(views[k]) for k in order}
    if data.num_mel_bins:
        views = spectrogram_views(views)
    else:
        views = {k: pipeline.denormalize(v, data.mean, data.std) for k, v in views.items()}
    return picture(views)


def save_grid(columns: dict[str, np.ndarray], path: str | Path) -> Path:
    """Writes `picture(columns)` to `path` (creating its directory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture(columns).save(path)
    return path
