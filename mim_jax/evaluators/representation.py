"""kNN and linear-probe evaluation of frozen encoder features (train split -> eval split):
top-1 for single-label data, mAP for multi-label data (AudioSet-style "labels")."""

import time
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from mim_jax import config_lib, sharding
from mim_jax.data import pipeline, sources
from mim_jax.evaluators import classification, few_shot, knn, linear_probe

CACHE_BYTES = 2**31  # keep eval images in host memory when they fit in this budget


class CachedSplit:
    """An eval split's batches (cached in memory when small) and labels."""

    def __init__(self, source, data, batch_size: int, max_examples: int | None, views: int = 1):
        """`views` > 1: each video as its data.test_clips x data.test_crops test views."""
        self._args = (source, data, batch_size, max_examples, views > 1)
        n = len(source) if max_examples is None else min(max_examples, len(source))
        itemsize = 4 if data.num_mel_bins else 1  # float32 spectrograms, uint8 images
        size = n * views * int(np.prod(config_lib.input_shape(data))) * itemsize
        self._cache = [] if size <= CACHE_BYTES else None
        self._cached = False

    def batches(self):
        if self._cached:
            yield from self._cache
            return
        for item in pipeline.eval_batches(*self._args):
            if self._cache is not None:
                self._cache.append(item)
            yield item
        self._cached = self._cache is not None


def collect(split: CachedSplit, fn: Callable, mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """`fn(images on the mesh)` over a split, on the host: outputs [N, ...] and labels [N]
    (or multi-hot targets [N, C]); the padding of the last batch is dropped."""
    outs, labels = [], []
    pc, pi = jax.process_count(), jax.process_index()
    for batch, valid in split.batches():
        rows = len(batch["image"]) // pc  # every process holds the whole batch
        local = {"image": batch["image"][pi * rows : (pi + 1) * rows]}
        out = fn(sharding.global_batch(local, mesh)["image"])
        outs.append(sharding.to_host(out)[:valid])
        labels.append(batch["labels" if "labels" in batch else "label"][:valid])
    return np.concatenate(outs).astype(np.float32), np.concatenate(labels)


class RepresentationEvaluator:
    """kNN (k, temperature-weighted cosine votes) and a linear probe on features from
    `feature_fn(params, images) -> [B, D]` (images normalised, on the mesh)."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        feature_fn: Callable,
        mesh: Mesh,
        train_source=None,
        eval_source=None,
    ):
        self.config, self.mesh = config, mesh
        e, d = config.eval, config.data
        train_source = train_source or sources.build(d, d.train_split, config.seed)
        eval_source = eval_source or sources.build(d, d.eval_split, config.seed)
        self.splits = {
            "train": CachedSplit(train_source, d, e.batch_size, e.max_train_examples),
            "test": CachedSplit(eval_source, d, e.batch_size, e.max_test_examples),
        }
        normalize = lambda x: pipeline.normalize(x, d.mean, d.std)
        self._features = jax.jit(
            lambda params, images: feature_fn(params, normalize(images)),
            out_shardings=sharding.replicated(mesh),
        )

    def _collect(self, split: str, fn: Callable) -> tuple[np.ndarray, np.ndarray]:
        return collect(self.splits[split], fn, self.mesh)

    def _score(self, fn: Callable) -> dict[str, float]:
        e = self.config.eval
        train_x, train_y = self._collect("train", fn)
        test_x, test_y = self._collect("test", fn)
        n = self.config.data.num_classes
        if train_y.ndim == 2:  # multi-label: kNN votes and one-vs-rest probe, scored by mAP
            votes = knn.knn_votes(
                train_x, train_y, test_x, k=e.knn_k, temperature=e.knn_temperature
            )
            knn_map = classification.mean_average_precision(votes, test_y)["mAP"]
            probe = linear_probe.linear_probe(
                train_x, train_y, test_x, test_y, n, tuple(e.linear_l2), e.linear_steps
            )
            return {"knn_mAP": knn_map, "linear_mAP": probe["mAP"], "linear_l2": probe["l2"]}
        top1 = knn.knn_accuracy(
            train_x,
            train_y,
            test_x,
            test_y,
            num_classes=n,
            k=e.knn_k,
            temperature=e.knn_temperature,
        )
        probe = linear_probe.linear_probe(
            train_x, train_y, test_x, test_y, n, tuple(e.linear_l2), e.linear_steps
        )
        out = {"knn_top1": top1, "linear_top1": probe["top1"], "linear_l2": probe["l2"]}
        if e.few_shot:
            out.update(few_shot.few_shot(train_x, train_y, test_x, test_y, n, tuple(e.few_shot)))
        return out

    def evaluate(self, params) -> dict[str, float]:
        """Scores of the encoder with these params."""
        start = time.time()
        out = self._score(lambda images: self._features(params, images))
        logging.info("representation eval took %.1fs: %s", time.time() - start, out)
        return out

    def raw_pixels(self) -> dict[str, float]:
        """The same probes on standardised raw pixels: the baseline to beat."""
        d = self.config.data
        flat = jax.jit(
            lambda x: pipeline.normalize(x, d.mean, d.std).reshape(x.shape[0], -1),
            out_shardings=sharding.replicated(self.mesh),
        )
        return self._score(flat)
