"""Writes small ImageNet-style trees (root/<split>/<class>/<image>) for data tests."""

import io
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_bytes(seed: int, h: int = 40, w: int = 56, quality: int = 90) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    image = (np.stack([x * 3 + seed, y * 4, x + y], -1) + rng.integers(0, 30, (h, w, 3))) % 256
    buf = io.BytesIO()
    Image.fromarray(image.astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def write_tree(root: Path, split: str, per_class: dict[str, int], bad: dict[str, bytes] = ()):
    """`per_class[c]` good JPEGs per class, plus `bad[relative path] = bytes` files."""
    for c, n in per_class.items():
        (root / split / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (root / split / c / f"img_{i:03d}.JPEG").write_bytes(jpeg_bytes(hash((c, i)) % 1000))
    for rel, data in dict(bad).items():
        (root / split / rel).write_bytes(data)
    return root
