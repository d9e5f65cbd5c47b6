"""Scores of a trained classifier on the eval split: top-1 / top-5 accuracy and the
cross-entropy of its predictions (fine-tuning, linear and attentive probes)."""

import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from mim_jax import sharding
from mim_jax.data import pipeline
from mim_jax.evaluators import classification, representation


def scores(logits: np.ndarray, labels: np.ndarray, multilabel: bool = False) -> dict[str, float]:
    """logits [N, C] and labels [N]: top1, top5 (top-k for k = min(5, C)), the mean
    cross-entropy and the example count. Multi-hot labels [N, C]: mAP (AudioSet's macro
    mean over the classes with positives) instead; `multilabel` with labels [N]: both."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
    if labels.ndim == 2:
        out = classification.mean_average_precision(logits, labels)
        return {"mAP": out["mAP"], "num_examples": len(labels)}
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    out = {
        "top1": classification.top_k_accuracy(logits, labels, 1),
        "top5": classification.top_k_accuracy(logits, labels, min(5, logits.shape[1])),
        "eval_loss": float(-log_probs[np.arange(len(labels)), labels].mean()),
        "num_examples": len(labels),
    }
    if multilabel:
        one_hot = np.eye(logits.shape[1])[labels]
        out["mAP"] = classification.mean_average_precision(logits, one_hot)["mAP"]
    return out


def average_views(logits: jax.Array) -> jax.Array:
    """[B, V, C] logits of V views per video -> [B, C] log of the mean softmax: VideoMAE's
    multi-view score (softmax per view, averaged; engine_for_finetuning.py `merge`)."""
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).mean(axis=1)
    return jnp.log(probs)


def view_predict_fn(predict_fn: Callable) -> Callable:
    """`predict_fn` for inputs [B, V, ...] (V views each): views batched, scores averaged."""

    def predict(params, model_state, views):
        b, v = views.shape[:2]
        logits = predict_fn(params, model_state, views.reshape(b * v, *views.shape[2:]))
        return average_views(logits.reshape(b, v, -1))

    return predict


class PredictionEvaluator:
    """Runs `predict_fn(params, model_state, images) -> logits [B, C]` (images
    normalised, on the mesh) over the eval split (cached in memory when small).

    Videos with data.test_clips x data.test_crops > 1: periodic evaluations score the
    centre view, the final one (`final=True`) every view, averaged per video."""

    def __init__(
        self, config: ml_collections.ConfigDict, predict_fn: Callable, mesh: Mesh, eval_source
    ):
        d, e = config.data, config.eval
        self.mesh = mesh
        self.multilabel = config.model.get("loss", "softmax") == "bce"
        self.split = representation.CachedSplit(eval_source, d, e.batch_size, e.max_test_examples)
        self.num_views = d.test_clips * d.test_crops if d.num_frames else 1
        self.views_split = None
        if self.num_views > 1:
            self.views_split = representation.CachedSplit(
                eval_source, d, e.batch_size, e.max_test_examples, self.num_views
            )
            self.views_name = f"{d.test_clips}x{d.test_crops}"
        normalized = lambda fn: (
            lambda params, model_state, images: fn(
                params, model_state, pipeline.normalize(images, d.mean, d.std)
            )
        )
        repl = sharding.replicated(mesh)
        self._predict = jax.jit(normalized(predict_fn), out_shardings=repl)
        self._predict_views = jax.jit(normalized(view_predict_fn(predict_fn)), out_shardings=repl)

    def evaluate(self, params, model_state: dict, final: bool = False) -> dict[str, float]:
        start = time.time()
        split, predict = self.split, self._predict
        if final and self.views_split is not None:
            split, predict = self.views_split, self._predict_views
        fn = lambda images: predict(params, model_state, images)
        logits, labels = representation.collect(split, fn, self.mesh)
        out = scores(logits, labels, self.multilabel)
        if split is self.views_split:
            out["views"] = self.views_name
        logging.info("classifier eval took %.1fs: %s", time.time() - start, out)
        return out
