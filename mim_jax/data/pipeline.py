"""grain pipelines: source -> process shard -> shuffle -> transform (decode) -> drop bad
-> batch -> worker processes -> device prefetch.

Batches leave the host as uint8 images (or float32 log-mel spectrograms); `normalize` runs
on the device inside the step.
"""

import collections
import json
import os
import signal
from collections.abc import Iterator

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from mim_jax import sharding
from mim_jax.data import audio_transforms, randaugment, sampling, transforms, video_transforms

BAD_KEY = "num_bad"  # per element: unreadable examples dropped just before it


class DropBad(grain.IterDataset):
    """Drops elements the transforms marked {"error", "path"} (logging each path) and
    records in the next good element how many were dropped before it (`BAD_KEY`)."""

    def __iter__(self) -> grain.DatasetIterator:
        return _DropBadIterator(self._parent.__iter__())


class _DropBadIterator(grain.DatasetIterator):
    def __next__(self) -> dict:
        dropped = 0
        while True:
            element = next(self._parent)
            if "error" not in element:
                element[BAD_KEY] = np.int32(dropped)
                return element
            dropped += 1
            logging.warning("Skipping unreadable example %s: %s", element["path"], element["error"])

    def get_state(self):
        return self._parent.get_state()

    def set_state(self, state) -> None:
        self._parent.set_state(state)


def per_process_batch(batch_size: int, rows_per_element: int = 1) -> int:
    """Elements each process reads per step (a video element gives several clip rows)."""
    count = jax.process_count()
    if batch_size % (count * rows_per_element):
        raise ValueError(
            f"config.batch_size={batch_size} must divide over {count} processes"
            + (f" x {rows_per_element} clips per video" if rows_per_element > 1 else "")
        )
    return batch_size // (count * rows_per_element)


class ProcessRows(grain.MapDataset):
    """One process's share of every global batch: process i of P reads rows
    [i*b, (i+1)*b) of each batch of P*b consecutive elements of the global stream.

    The global batch is then the same for any process count (1 x 4 devices or 2 x 2),
    and since `random_map` runs upstream, each element's augmentation is seeded by its
    global position too.
    """

    def __init__(self, parent: grain.MapDataset, rows: int, index: int, count: int):
        super().__init__(parent)
        self._rows, self._index, self._count = rows, index, count

    def __len__(self) -> int:
        return len(self._parent) // (self._rows * self._count) * self._rows

    def __getitem__(self, j):
        if isinstance(j, slice):
            return self.slice(j)
        batch, row = divmod(j, self._rows)
        return self._parent[(batch * self._count + self._index) * self._rows + row]

    def __str__(self) -> str:
        return f"ProcessRows(rows={self._rows}, index={self._index}, count={self._count})"


def audio_augment_options(data: ml_collections.ConfigDict) -> tuple[float, int, int]:
    """(mixup, freqm, timem) of config.data (checked by config_lib.validate); keys missing
    from older configs are off."""
    return float(data.get("mixup", 0.0)), int(data.get("freqm", 0)), int(data.get("timem", 0))


def train_transform(data: ml_collections.ConfigDict) -> grain.transforms.RandomMap:
    """The augmentation for images, clips (`num_samples` clips per video) or audio."""
    mixup, freqm, timem = audio_augment_options(data)
    if data.num_mel_bins:
        return audio_transforms.AudioTrainTransform(
            sample_rate=data.sample_rate,
            num_mel_bins=data.num_mel_bins,
            target_length=data.target_length,
            gain_aug=data.gain_aug,
            time_roll=data.time_roll,
            num_classes=int(data.get("num_classes", 0)),
            mix_labels=mixup > 0,
            freqm=freqm,
            timem=timem,
        )
    if not data.num_frames:
        return transforms.TrainTransform(
            size=data.image_size,
            channels=data.channels,
            scale=tuple(data.crop_scale),
            ratio=tuple(data.crop_ratio),
            flip=data.flip,
            randaugment=randaugment.parse(data.randaugment, data.image_size, tuple(data.mean)),
        )
    return video_transforms.VideoTrainTransform(
        num_frames=data.num_frames,
        sampling_rate=data.sampling_rate,
        size=data.image_size,
        channels=data.channels,
        num_samples=data.num_samples,
        crop=data.video_crop,
        scales=tuple(data.crop_scales),
        scale=tuple(data.crop_scale),
        ratio=tuple(data.crop_ratio),
        flip=data.flip,
        min_frames=data.min_video_frames,
        target_fps=data.target_fps,
        share_frames=data.samples_share_frames,
        sampling=data.clip_sampling,
        randaugment=randaugment.parse(data.randaugment, data.image_size, tuple(data.mean)),
    )


def eval_transform(data: ml_collections.ConfigDict, views: bool = False) -> grain.transforms.Map:
    """The eval transform; with `views`, a video's data.test_clips x data.test_crops views."""
    if data.num_mel_bins:
        return audio_transforms.AudioEvalTransform(
            data.sample_rate, data.num_mel_bins, data.target_length
        )
    if not data.num_frames:
        return transforms.EvalTransform(data.image_size, data.channels, data.eval_crop_pct)
    return video_transforms.VideoEvalTransform(
        data.num_frames,
        data.sampling_rate,
        data.image_size,
        data.channels,
        data.eval_crop_pct,
        num_clips=data.test_clips if views else 1,
        num_crops=data.test_crops if views else 1,
        sampling=data.clip_sampling,
    )


def balanced_sampling(data: ml_collections.ConfigDict) -> bool:
    """config.data.balanced_sampling (False when an older config lacks it)."""
    return bool(data.get("balanced_sampling", False))


def examples_per_epoch(source, data: ml_collections.ConfigDict) -> int:
    """Examples in one training epoch: config.data.epoch_len draws with balanced sampling
    (when > 0), else the dataset size."""
    epoch_len = int(data.get("epoch_len", 0))
    return epoch_len if balanced_sampling(data) and epoch_len > 0 else len(source)


def train_stream(source, data: ml_collections.ConfigDict, seed: int) -> grain.MapDataset:
    """The infinite stream of source elements in training order: reshuffled every epoch,
    or class-balanced draws with replacement (config.data.balanced_sampling)."""
    ds = grain.MapDataset.source(source).seed(seed)
    if not balanced_sampling(data):
        return ds.shuffle().repeat(None)
    weights = sampling.balanced_weights(sampling.source_label_ids(source))
    return sampling.WeightedSampler(ds, weights, seed, int(data.get("epoch_len", 0)))


def train_dataset(
    source, data: ml_collections.ConfigDict, batch_size: int, seed: int
) -> grain.IterDataset:
    """Infinite, reshuffled-every-epoch (or class-balanced) dataset of this process's rows
    of each augmented global batch.

    Deterministic in `seed`: element order, mixup partners, crops and flips depend only on
    the seed and the position in the global stream (not on the number of processes), so
    the iterator state alone restores the exact stream. With videos, one element gives
    `data.num_samples` clips, which become batch rows.
    """
    samples = data.num_samples if data.num_frames else 1
    rows = per_process_batch(batch_size, samples)
    transform = train_transform(data)
    ds = train_stream(source, data, seed)
    mixup, _, _ = audio_augment_options(data)
    if mixup > 0:
        ds = audio_transforms.MixupPartners(ds, source, mixup, seed)
    ds = ds.random_map(transform)
    ds = ProcessRows(ds, rows, jax.process_index(), jax.process_count())
    read = grain.ReadOptions(num_threads=data.read_threads, prefetch_buffer_size=4)
    it_ds = DropBad(ds.to_iter_dataset(read))
    it_ds = it_ds.batch(rows, drop_remainder=True)
    if data.num_frames:
        it_ds = it_ds.map(video_transforms.flatten_samples)
    if data.num_workers > 0:
        it_ds = it_ds.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=data.num_workers),
            worker_init_fn=die_with_parent,
        )
    return it_ds


def die_with_parent(worker_index: int = 0, worker_count: int = 0) -> None:
    """grain worker init: on Linux, have the kernel kill this worker when the trainer dies
    (kill -9, OOM), instead of leaving it orphaned and busy on the CPU."""
    del worker_index, worker_count
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: nothing to arm
    if os.getppid() == 1:  # the parent died before the signal was armed
        os._exit(1)


def eval_batches(
    source,
    data: ml_collections.ConfigDict,
    batch_size: int,
    max_examples: int | None = None,
    views: bool = False,
) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """The first `max_examples` of `source` in order, eval-transformed, in full batches.

    Yields (batch, num_valid); the last batch is padded by repeating its final row.
    Unreadable images are skipped (and logged). `views`: videos as their multi-view test
    views, "image" [B, V, T, H, W, C].
    """
    n = len(source) if max_examples is None else min(max_examples, len(source))
    ds = grain.MapDataset.source(source)[:n].map(eval_transform(data, views))
    read = grain.ReadOptions(num_threads=data.read_threads, prefetch_buffer_size=2)
    ds = DropBad(ds.to_iter_dataset(read)).batch(batch_size, drop_remainder=False)
    for batch in ds:
        batch.pop(BAD_KEY)
        valid = len(batch["label"])
        if valid < batch_size:
            extra = batch_size - valid
            batch = {k: np.concatenate([v, np.repeat(v[-1:], extra, 0)]) for k, v in batch.items()}
        yield batch, valid


class DevicePrefetcher:
    """Global batches placed on the mesh `depth` steps ahead of the train step, so host
    to device copies overlap compute.

    Checkpointable through grain's Orbax handler: the saved position is that of the last
    batch handed out, not of the batches still queued, so a restore repeats nothing and
    skips nothing. Counts the unreadable images dropped (`bad_examples`) and stops when
    more than `max_bad_fraction` of one batch's reads were bad.
    """

    def __init__(
        self,
        iterator,
        mesh: Mesh,
        depth: int = 2,
        max_bad_fraction: float = 0.5,
        rows_per_element: int = 1,
    ):
        self._iterator, self._mesh, self._rows_per_element = iterator, mesh, rows_per_element
        self._depth, self._max_bad = max(depth, 1), max_bad_fraction
        self._queue = collections.deque()
        self._state = iterator.get_state()
        self.bad_examples = 0  # since this process started

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, jax.Array]:
        while len(self._queue) < self._depth:
            host = next(self._iterator)
            bad = int(np.sum(host.pop(BAD_KEY, 0)))
            rows = len(host["image"]) // self._rows_per_element  # videos, not clips
            if bad > self._max_bad * (rows + bad):
                raise RuntimeError(
                    f"{bad} of {rows + bad} examples read for one batch were unreadable (more "
                    f"than config.data.max_bad_fraction={self._max_bad}); see the warnings "
                    "above for their paths. Is the dataset damaged?"
                )
            batch = sharding.global_batch(host, self._mesh)
            self._queue.append((batch, self._iterator.get_state(), bad))
        batch, self._state, bad = self._queue.popleft()
        self.bad_examples += bad
        return batch

    # The interface grain's checkpoint handler uses for non-grain iterators (bytes).
    def get_state(self) -> bytes:
        return json.dumps(self._state).encode()

    def set_state(self, state: bytes) -> None:
        self._state = json.loads(state)
        self._iterator.set_state(self._state)
        self._queue.clear()

    def start_prefetch(self) -> None:
        pass  # the next __next__ refills the queue


def normalize(images: jax.Array, mean, std, dtype=jnp.float32) -> jax.Array:
    """uint8 [B, H, W, C] -> (x / 255 - mean) / std per channel; float inputs (log-mel
    spectrograms) -> (x - mean) / std."""
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    x = images.astype(jnp.float32)
    if images.dtype == jnp.uint8:
        x = x / 255.0
    return ((x - mean) / std).astype(dtype)


def denormalize(images: jax.Array, mean, std) -> np.ndarray:
    """Normalised float images -> uint8, clipped (for PNGs)."""
    x = np.asarray(images, np.float32) * np.asarray(std) + np.asarray(mean)
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
