"""Input pipeline benchmark: host samples/s of a config's training pipeline (no device).

    python -m mim_jax.data.bench --config=configs/mae.py --workers=0 --steps=50
    python -m mim_jax.data.bench --config=configs/mae.py:variant=B/16,data=folder \
        --jpeg_folder=synthesize --workers=2 --steps=20 --batch_size=256

Prints (1) one core: decode + RandomResizedCrop + flip in a plain loop, images/s;
(2) the full grain pipeline with `--workers` processes, samples/s and per worker.
`--jpeg_folder=synthesize` writes a folder of ImageNet-like JPEGs (500x375, ~110 KB,
`--num_jpegs` of them) into a temporary directory and benchmarks data=folder on it.
"""

import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import app, flags
from ml_collections import config_flags
from PIL import Image

from mim_jax import config_lib

config_lib.add_config_root_to_path(sys.argv)
_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKERS = flags.DEFINE_integer("workers", 0, "grain worker processes (0: threads in-process).")
_STEPS = flags.DEFINE_integer("steps", 50, "Batches to time (after 3 warm-up batches).")
_BATCH = flags.DEFINE_integer("batch_size", None, "Per-process batch (default: the config's).")
_FOLDER = flags.DEFINE_string("jpeg_folder", None, "An image folder root, or 'synthesize'.")
_NUM_JPEGS = flags.DEFINE_integer("num_jpegs", 512, "Images per synthesized folder.")


def synthetic_jpeg(rng: np.random.Generator, height: int = 375, width: int = 500) -> bytes:
    """A photo-like JPEG: smooth colour regions, edges and fine texture (quality 90); at
    500x375 it is ~110 KB, like an average ImageNet train image."""
    from PIL import ImageFilter

    def field(cells_h: int, cells_w: int, low: float, high: float) -> np.ndarray:
        small = rng.uniform(low, high, (cells_h, cells_w, 3)).astype(np.uint8)
        big = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
        return np.asarray(big, np.float32)

    texture = Image.fromarray(rng.normal(128, 36, (height, width, 3)).clip(0, 255).astype(np.uint8))
    texture = texture.filter(ImageFilter.GaussianBlur(0.5))
    image = (
        field(6, 8, 0, 255) + field(48, 64, 88, 168) - 128 + np.asarray(texture, np.float32) - 128
    )
    buf = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def synthesize_folder(root: Path, num_images: int, num_classes: int = 8) -> float:
    """Writes root/train/<class>/<i>.JPEG; returns the mean file size in KB."""
    rng = np.random.default_rng(0)
    sizes = []
    for i in range(num_images):
        directory = root / "train" / f"n{i % num_classes:08d}"
        directory.mkdir(parents=True, exist_ok=True)
        data = synthetic_jpeg(rng)
        (directory / f"{i:06d}.JPEG").write_bytes(data)
        sizes.append(len(data))
    return float(np.mean(sizes)) / 1e3


def one_core(source, transform, n: int) -> float:
    """images/s of transform(source[i]) in a plain loop on this core."""
    rng = np.random.default_rng(0)
    elements = [source[i % len(source)] for i in range(n)]  # reads outside the timing
    start = time.perf_counter()
    for element in elements:
        transform.random_map(dict(element), rng)
    return n / (time.perf_counter() - start)


def main(argv):
    del argv
    from mim_jax.data import pipeline, sources, transforms

    config = _CONFIG.value
    d = config.data
    with tempfile.TemporaryDirectory() as tmp:
        if _FOLDER.value:
            root = Path(tmp) if _FOLDER.value == "synthesize" else Path(_FOLDER.value)
            if _FOLDER.value == "synthesize":
                kb = synthesize_folder(root, _NUM_JPEGS.value)
                print(f"synthesized {_NUM_JPEGS.value} JPEGs of 500x375, mean {kb:.0f} KB")
            d.name, d.root, d.train_split = "folder", str(root), "train"
            d.index_cache_dir = str(Path(tmp) / "index")
        d.num_workers = _WORKERS.value
        batch = _BATCH.value or config.batch_size
        source = sources.build(d, d.train_split, config.seed)
        t = transforms.TrainTransform(
            d.image_size, d.channels, tuple(d.crop_scale), tuple(d.crop_ratio), d.flip
        )
        print(f"data={d.name} image_size={d.image_size} batch={batch} workers={d.num_workers}")
        per_core = one_core(source, t, min(len(source), 400))
        print(f"one core, decode + RandomResizedCrop + flip: {per_core:,.0f} images/s")

        it = iter(pipeline.train_dataset(source, d, batch, config.seed))
        for _ in range(3):
            next(it)
        start = time.perf_counter()
        for _ in range(_STEPS.value):
            next(it)
        rate = _STEPS.value * batch / (time.perf_counter() - start)
        it.close()  # stop worker processes before the temporary folder goes
        cores = os.cpu_count()
        print(
            f"pipeline: {rate:,.0f} samples/s with {d.num_workers} workers "
            f"({rate / max(d.num_workers, 1):,.0f} per worker; machine has {cores} cores)"
        )


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(main)
