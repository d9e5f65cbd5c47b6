"""PNG grids of reconstructions: one row per image, one column per view."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

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


def save_grid(columns: dict[str, np.ndarray], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid_image(columns).save(path)
    return path
