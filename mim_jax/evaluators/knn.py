"""Weighted k-nearest-neighbour classification on cosine similarity (DINO/InstDisc style)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


@functools.partial(jax.jit, static_argnames=("num_classes", "k"))
def _predict_chunk(train, train_labels, queries, num_classes: int, k: int, temperature: float):
    sims = l2_normalize(queries) @ train.T  # [M, N] cosine similarities
    top_sims, top_idx = jax.lax.top_k(sims, k)  # [M, k]
    weights = jnp.exp(top_sims / temperature)
    votes = jax.nn.one_hot(train_labels[top_idx], num_classes) * weights[..., None]
    return jnp.argmax(votes.sum(axis=1), axis=-1)


def knn_predict(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 512,
) -> np.ndarray:
    """Class predictions [M] from the k most similar train features, votes weighted by
    exp(similarity / temperature)."""
    k = min(k, len(train_features))
    train = l2_normalize(jnp.asarray(train_features, jnp.float32))
    labels = jnp.asarray(train_labels, jnp.int32)
    test = np.asarray(test_features, np.float32)
    preds = []
    for start in range(0, len(test), chunk):  # fixed chunk shape: one compilation
        q = test[start : start + chunk]
        q = np.pad(q, ((0, chunk - len(q)), (0, 0))) if len(q) < chunk else q
        p = _predict_chunk(train, labels, jnp.asarray(q), num_classes, k, temperature)
        preds.append(np.asarray(p)[: min(chunk, len(test) - start)])
    return np.concatenate(preds)


def knn_accuracy(train_features, train_labels, test_features, test_labels, **kwargs) -> float:
    preds = knn_predict(train_features, train_labels, test_features, **kwargs)
    return float(np.mean(preds == np.asarray(test_labels)))
