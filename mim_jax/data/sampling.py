"""Class-balanced sampling (Audio-MAE `--weight_sampler`).

The official recipe weighs each training example by its classes' rarity
(dataset/audioset/gen_weight.py) and draws `epoch_len` examples per epoch with replacement
(torch WeightedRandomSampler, reseeded with seed + epoch: dataset.py L35). `WeightedSampler`
is that draw as an infinite, position-addressable grain stream: element k depends only on
(seed, k), so the grain iterator state restores it exactly, as with the plain shuffle.
"""

import itertools
import sys
from collections.abc import Sequence

import grain
import numpy as np
from absl import logging

CLASS_WEIGHT_SCALE = 1000.0  # gen_weight.py L32: 1000 / (count + 0.01)
COUNT_OFFSET = 0.01


def _flatten(label_ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(every listed id [M] int64, its example's index [M] int64)."""
    lengths = np.fromiter((len(ids) for ids in label_ids), np.int64, len(label_ids))
    flat = np.fromiter(itertools.chain.from_iterable(label_ids), np.int64, int(lengths.sum()))
    return flat, np.repeat(np.arange(len(label_ids)), lengths)


def label_counts(label_ids: Sequence[Sequence[int]], num_classes: int | None = None) -> np.ndarray:
    """Examples listing each class, [C] int64 (a label listed twice counts twice, as in
    gen_weight.py L26-30); C = `num_classes`, else 1 + the largest id."""
    flat, _ = _flatten(label_ids)
    if len(flat) and flat.min() < 0:
        raise ValueError(f"negative label id {flat.min()}")
    largest = int(flat.max()) + 1 if len(flat) else 0
    if num_classes is not None and largest > num_classes:
        raise ValueError(f"label id {largest - 1} is outside [0, num_classes={num_classes})")
    return np.bincount(flat, minlength=num_classes or largest)


def balanced_weights(
    label_ids: Sequence[Sequence[int]], num_classes: int | None = None
) -> np.ndarray:
    """Per-example weights [N] float64: sum over the example's labels c of
    1000 / (count_c + 0.01) (gen_weight.py L32, L38-41); an example without labels gets 0."""
    flat, owner = _flatten(label_ids)
    class_weight = CLASS_WEIGHT_SCALE / (label_counts(label_ids, num_classes) + COUNT_OFFSET)
    return np.bincount(owner, weights=class_weight[flat], minlength=len(label_ids))


def _element_label_ids(element: dict) -> list[int]:
    """An element's label ids: the nonzero entries of multi-hot "labels", else [label]."""
    if "labels" in element:
        return np.flatnonzero(np.asarray(element["labels"])).tolist()
    return [int(element["label"])]


def source_label_ids(source) -> list[list[int]]:
    """Every example's label ids, as cheaply as the source allows.

    `source.label_ids` (AudioListSource) or a 1-D integer `source.labels` array
    (FolderSource, ArraySource) cost nothing; otherwise each element is read once, which
    for file or TFDS sources means reading (and for TFDS audio, decoding) the whole split.
    Unreadable elements get no labels (weight 0: never drawn).
    """
    if getattr(source, "label_ids", None) is not None:
        return [list(map(int, ids)) for ids in source.label_ids]
    labels = getattr(source, "labels", None)
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and len(labels) == len(source):
        if np.issubdtype(labels.dtype, np.integer):
            return [[int(x)] for x in labels]
    logging.info("Reading the labels of all %d examples for balanced sampling", len(source))
    out = []
    for i in range(len(source)):
        element = source[i]
        if "error" in element:
            logging.warning("No label for unreadable %s: never drawn", element.get("path", i))
            out.append([])
        else:
            out.append(_element_label_ids(element))
    return out


class WeightedSampler(grain.MapDataset):
    """An infinite stream of `parent` elements drawn with replacement in proportion to
    `weights`: epoch e (`epoch_len` draws, 0 = len(parent)) is
    default_rng([seed, e]).choice(N, epoch_len, p=weights / sum) and element k is the
    parent element of draw k mod epoch_len of epoch k // epoch_len.
    """

    _CACHED_EPOCHS = 2  # threads reading across an epoch boundary share both

    def __init__(
        self, parent: grain.MapDataset, weights: np.ndarray, seed: int, epoch_len: int = 0
    ):
        super().__init__(parent)
        weights = np.asarray(weights, np.float64)
        if weights.shape != (len(parent),):
            raise ValueError(f"{weights.shape[0]} weights for {len(parent)} examples")
        if not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("sampling weights must be finite, >= 0 and not all 0")
        if epoch_len < 0:
            raise ValueError(f"config.data.epoch_len must be >= 0, got {epoch_len}")
        self._p = weights / weights.sum()
        self._seed, self._epoch_len = int(seed), int(epoch_len) or len(parent)
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return sys.maxsize  # infinite, like repeat(None)

    @property
    def epoch_len(self) -> int:
        return self._epoch_len

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """The parent indices drawn in `epoch`, [epoch_len] int64 (cached)."""
        cache = self._cache  # replaced whole, never mutated: safe across reader threads
        if epoch not in cache:
            rng = np.random.default_rng([self._seed, int(epoch)])
            drawn = rng.choice(len(self._p), self._epoch_len, replace=True, p=self._p)
            keep = sorted(cache)[-(self._CACHED_EPOCHS - 1) :]
            cache = {**{e: cache[e] for e in keep}, epoch: drawn}
            self._cache = cache
        return cache[epoch]

    def __getitem__(self, k):
        if isinstance(k, slice):
            return self.slice(k)
        epoch, position = divmod(int(k), self._epoch_len)
        return self._parent[int(self.epoch_indices(epoch)[position])]

    def __str__(self) -> str:
        return f"WeightedSampler(epoch_len={self._epoch_len}, seed={self._seed})"
