"""grain pipelines: source -> process shard -> shuffle -> transform -> batch -> iterator.

Batches leave the host as uint8 images; `normalize` runs on the device inside the step.
"""

from collections.abc import Iterator

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mim_jax.data import transforms


def per_process_batch(batch_size: int) -> int:
    if batch_size % jax.process_count():
        raise ValueError(
            f"config.batch_size={batch_size} must divide over {jax.process_count()} processes"
        )
    return batch_size // jax.process_count()


def train_dataset(
    source, data: ml_collections.ConfigDict, batch_size: int, seed: int
) -> grain.IterDataset:
    """Infinite, per-process-sharded, reshuffled-every-epoch dataset of augmented batches.

    Deterministic in `seed`: element order, crops and flips depend only on the seed and the
    position in the stream, so the iterator state alone restores the exact stream.
    """
    ds = grain.MapDataset.source(source)
    ds = ds[jax.process_index() :: jax.process_count()]
    ds = ds.seed(seed).shuffle().repeat(None)
    ds = ds.random_map(
        transforms.TrainTransform(
            size=data.image_size,
            channels=data.channels,
            scale=tuple(data.crop_scale),
            ratio=tuple(data.crop_ratio),
            flip=data.flip,
        )
    )
    ds = ds.batch(per_process_batch(batch_size), drop_remainder=True)
    read = grain.ReadOptions(num_threads=data.read_threads, prefetch_buffer_size=4)
    it_ds = ds.to_iter_dataset(read)
    if data.num_workers > 0:
        it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=data.num_workers))
    return it_ds


def eval_batches(
    source,
    data: ml_collections.ConfigDict,
    batch_size: int,
    max_examples: int | None = None,
) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """The first `max_examples` of `source` in order, eval-transformed, in full batches.

    Yields (batch, num_valid); the last batch is padded by repeating its final row.
    """
    n = len(source) if max_examples is None else min(max_examples, len(source))
    ds = grain.MapDataset.source(source)[:n].map(
        transforms.EvalTransform(data.image_size, data.channels, data.eval_crop_pct)
    )
    ds = ds.batch(batch_size, drop_remainder=False)
    read = grain.ReadOptions(num_threads=data.read_threads, prefetch_buffer_size=2)
    for batch in ds.to_iter_dataset(read):
        valid = len(batch["label"])
        if valid < batch_size:
            extra = batch_size - valid
            batch = {k: np.concatenate([v, np.repeat(v[-1:], extra, 0)]) for k, v in batch.items()}
        yield batch, valid


def normalize(images: jax.Array, mean, std, dtype=jnp.float32) -> jax.Array:
    """uint8 [B, H, W, C] -> (x / 255 - mean) / std, per channel."""
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    return ((images.astype(jnp.float32) / 255.0 - mean) / std).astype(dtype)


def denormalize(images: jax.Array, mean, std) -> np.ndarray:
    """Normalised float images -> uint8, clipped (for PNGs)."""
    x = np.asarray(images, np.float32) * np.asarray(std) + np.asarray(mean)
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
