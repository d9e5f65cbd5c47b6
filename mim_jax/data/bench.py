"""Input pipeline benchmark: host samples/s of a config's training pipeline (no device).

    python -m mim_jax.data.bench --config=configs/mae.py --workers=0 --steps=50
    python -m mim_jax.data.bench --config=configs/mae.py:variant=B/16,data=folder \
        --jpeg_folder=synthesize --workers=2 --steps=20 --batch_size=256

    python -m mim_jax.data.bench --config=configs/videomae.py:variant=B/16,data=folder \
        --video_folder=synthesize --workers=0 --steps=10 --batch_size=32

Prints (1) one core: the training transform in a plain loop (images: decode +
RandomResizedCrop + flip; videos: decode + temporal sampling + crop, all clips of one
video), samples/s; (2) the full grain pipeline with `--workers` processes, samples/s and
per worker. `--jpeg_folder=synthesize` writes ImageNet-like JPEGs (500x375, ~110 KB,
`--num_jpegs` of them); `--video_folder=synthesize` writes Kinetics-like videos (H.264,
320x240, 30 fps, 10 s, `--num_videos` of them); both go to a temporary directory.
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
_VIDEOS = flags.DEFINE_string("video_folder", None, "A video folder root, or 'synthesize'.")
_NUM_VIDEOS = flags.DEFINE_integer("num_videos", 16, "Videos per synthesized folder.")


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


def synthetic_video(path: Path, rng: np.random.Generator, frames: int = 300) -> None:
    """A Kinetics-like clip: 320x240 H.264 (x264 defaults), 30 fps, a textured scene
    panning and a bright blob moving across it, so motion search and residuals cost
    what they do on real footage."""
    import av

    h, w = 240, 320
    scene = np.asarray(
        Image.fromarray(rng.integers(0, 256, (h // 8, 2 * w // 8, 3), dtype=np.uint8)).resize(
            (2 * w, h), Image.Resampling.BICUBIC
        ),
        np.int16,
    )
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            frame = scene[:, t % w : t % w + w].copy()
            y, x = int(h / 2 + 60 * np.sin(t / 20)), int((3 * t) % w)
            frame[max(y - 20, 0) : y + 20, max(x - 20, 0) : x + 20] += 80
            frame += rng.integers(-6, 7, frame.shape, dtype=np.int16)
            image = np.clip(frame, 0, 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def synthesize_videos(root: Path, num_videos: int, num_classes: int = 4) -> float:
    """Writes root/train/<class>/<i>.mp4; returns the mean file size in KB."""
    rng = np.random.default_rng(0)
    sizes = []
    for i in range(num_videos):
        directory = root / "train" / f"class{i % num_classes}"
        directory.mkdir(parents=True, exist_ok=True)
        synthetic_video(directory / f"{i:04d}.mp4", rng)
        sizes.append((directory / f"{i:04d}.mp4").stat().st_size)
    return float(np.mean(sizes)) / 1e3


def one_core(source, transform, n: int) -> float:
    """samples/s (clips for videos: all of an element's clips) of transform(source[i]) in
    a plain loop on this core."""
    rng = np.random.default_rng(0)
    elements = [source[i % len(source)] for i in range(n)]  # reads outside the timing
    rows = 0
    start = time.perf_counter()
    for element in elements:
        out = transform.random_map(dict(element), rng)
        rows += len(out["label"]) if np.ndim(out.get("label", 0)) else 1
    return rows / (time.perf_counter() - start)


def main(argv):
    del argv
    from mim_jax.data import pipeline, sources

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
        if _VIDEOS.value:
            root = Path(tmp) if _VIDEOS.value == "synthesize" else Path(_VIDEOS.value)
            if _VIDEOS.value == "synthesize":
                kb = synthesize_videos(root, _NUM_VIDEOS.value)
                print(f"synthesized {_NUM_VIDEOS.value} H.264 videos, 320x240, 10 s, {kb:.0f} KB")
            d.name, d.root, d.train_split = "video_folder", str(root), "train"
        d.num_workers = _WORKERS.value
        batch = _BATCH.value or config.batch_size
        source = sources.build(d, d.train_split, config.seed)
        t = pipeline.train_transform(d)
        what = "clips" if d.num_frames else "images"
        print(f"data={d.name} image_size={d.image_size} batch={batch} workers={d.num_workers}")
        if d.num_frames:
            print(
                f"clips: {d.num_frames} frames every {d.sampling_rate}, {d.num_samples} per video"
            )
        per_core = one_core(source, t, min(len(source), 400 if not d.num_frames else 32))
        print(f"one core, the training transform: {per_core:,.1f} {what}/s")

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
            f"pipeline: {rate:,.1f} {what}/s with {d.num_workers} workers "
            f"({rate / max(d.num_workers, 1):,.1f} per worker; machine has {cores} cores)"
        )


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(main)
