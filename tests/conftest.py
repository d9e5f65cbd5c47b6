"""Tests run on CPU with 8 fake devices (set before JAX initialises)."""

import os

os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest


def write_idx(path: Path, array: np.ndarray) -> None:
    """Writes a uint8 IDX file (gzipped when the name ends in .gz)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(data)


def make_fashion_like(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Structured 28x28 images: each of 4 classes is a bright rectangle in its own place,
    plus noise, so a model can learn them in a few steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, y in enumerate(labels):
        r, c = divmod(int(y), 2)
        images[i, 2 + 12 * r : 12 + 12 * r, 2 + 12 * c : 14 + 12 * c] = 200 + rng.integers(0, 50)
    return images, labels.astype(np.uint8)


@pytest.fixture(scope="session")
def fake_fmnist(tmp_path_factory) -> Path:
    """A directory of Fashion-MNIST-format IDX files (train 512, test 128 examples)."""
    root = tmp_path_factory.mktemp("fmnist")
    for split, stem, n in (("train", "train", 512), ("test", "t10k", 128)):
        images, labels = make_fashion_like(n, seed=0 if split == "train" else 1)
        write_idx(root / f"{stem}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{stem}-labels-idx1-ubyte.gz", labels)
    return root
