"""Moving Fashion-MNIST: the embedded video dataset, generated from the Fashion-MNIST files.

Video i shows Fashion-MNIST item i (and, in half of the videos, a second item of the same
class) moving in straight lines and bouncing off the borders of a black canvas; its label
is the item class. Every video is a pure function of (split seed, i), so the dataset is
the same on every machine and needs no storage: frames are drawn on demand, in the data
workers, in well under a millisecond.
"""

import numpy as np

from mim_jax.data import sources

SPLIT_SEEDS = {"train": 0, "test": 1}  # fixed: the dataset does not depend on config.seed
SPEED = (1.0, 3.0)  # pixels per frame


def bounce(start: np.ndarray, velocity: np.ndarray, steps: int, limit: float) -> np.ndarray:
    """Positions [steps, 2] of a point moving from `start` at `velocity`, reflected at 0
    and `limit` (a triangle wave of period 2 * limit)."""
    p = start[None] + velocity[None] * np.arange(steps)[:, None]
    if limit <= 0:
        return np.zeros_like(p)
    p = np.mod(p, 2 * limit)
    return np.where(p > limit, 2 * limit - p, p)


class MovingFashionMNIST:
    """Random-access source of {"video": uint8 [frames, size, size, 1], "label": int32}."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        num_frames: int = 32,
        size: int = 64,
        seed: int = 0,
        max_items: int = 2,
    ):
        if images.ndim == 4:
            images = images[..., 0]
        item = images.shape[1]
        if size < item:
            raise ValueError(f"moving Fashion-MNIST canvas {size} is smaller than an item ({item})")
        self.images, self.labels = images, labels.astype(np.int32)
        self.num_frames, self.size, self.seed, self.max_items = num_frames, size, seed, max_items
        self._by_class = {c: np.flatnonzero(self.labels == c) for c in np.unique(self.labels)}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        rng = np.random.default_rng((self.seed, index))
        label = self.labels[index]
        items = [index]
        if self.max_items > 1 and rng.random() < 0.5:
            items.append(int(rng.choice(self._by_class[label])))
        item = self.images.shape[1]
        limit = self.size - item
        video = np.zeros((self.num_frames, self.size, self.size), np.uint8)
        t = np.arange(self.num_frames)
        for i in items:
            angle = rng.uniform(0, 2 * np.pi)
            velocity = rng.uniform(*SPEED) * np.array([np.sin(angle), np.cos(angle)])
            path = np.rint(bounce(rng.uniform(0, limit, 2), velocity, self.num_frames, limit))
            rows, cols = path.astype(np.int64).T
            # [T, item, item] windows of the canvas each item covers, overlaid with max.
            r = rows[:, None, None] + np.arange(item)[None, :, None]
            c = cols[:, None, None] + np.arange(item)[None, None, :]
            tt = np.broadcast_to(t[:, None, None], r.shape)
            video[tt, r, c] = np.maximum(video[tt, r, c], self.images[i][None])
        return {"video": video[..., None], "label": label}


def moving_fashion_mnist(
    split: str, root: str | None, num_frames: int, size: int
) -> MovingFashionMNIST:
    """The split of moving Fashion-MNIST built on the Fashion-MNIST files (see sources)."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"moving Fashion-MNIST split {split!r}; valid: {sorted(SPLIT_SEEDS)}")
    base = sources.fashion_mnist(split, root)
    return MovingFashionMNIST(base.images, base.labels, num_frames, size, seed=SPLIT_SEEDS[split])
