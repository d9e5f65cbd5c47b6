"""Scores of a trained classifier on the eval split: top-1 / top-5 accuracy and the
cross-entropy of its predictions (fine-tuning, linear and attentive probes)."""

import time
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from mim_jax import sharding
from mim_jax.data import pipeline
from mim_jax.evaluators import classification, representation


def scores(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """top1, top5 (top-k for k = min(5, C)), mean cross-entropy and the example count.
    logits [N, C], labels [N]."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return {
        "top1": classification.top_k_accuracy(logits, labels, 1),
        "top5": classification.top_k_accuracy(logits, labels, min(5, logits.shape[1])),
        "eval_loss": float(-log_probs[np.arange(len(labels)), labels].mean()),
        "num_examples": len(labels),
    }


class PredictionEvaluator:
    """Runs `predict_fn(params, model_state, images) -> logits [B, C]` (images
    normalised, on the mesh) over the eval split (cached in memory when small)."""

    def __init__(
        self, config: ml_collections.ConfigDict, predict_fn: Callable, mesh: Mesh, eval_source
    ):
        d, e = config.data, config.eval
        self.mesh = mesh
        self.split = representation.CachedSplit(eval_source, d, e.batch_size, e.max_test_examples)
        self._predict = jax.jit(
            lambda params, model_state, images: predict_fn(
                params, model_state, pipeline.normalize(images, d.mean, d.std)
            ),
            out_shardings=sharding.replicated(mesh),
        )

    def evaluate(self, params, model_state: dict) -> dict[str, float]:
        start = time.time()
        fn = lambda images: self._predict(params, model_state, images)
        logits, labels = representation.collect(self.split, fn, self.mesh)
        out = scores(logits, labels)
        logging.info("classifier eval took %.1fs: %s", time.time() - start, out)
        return out
