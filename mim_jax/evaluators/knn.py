"""Weighted k-nearest-neighbour classification on cosine similarity (DINO/InstDisc style)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


@functools.partial(jax.jit, static_argnames=("k",))
def _votes_chunk(train, train_targets, queries, k: int, temperature: float):
    sims = l2_normalize(queries) @ train.T  # [M, N] cosine similarities
    top_sims, top_idx = jax.lax.top_k(sims, k)  # [M, k]
    weights = jnp.exp(top_sims / temperature)
    return (train_targets[top_idx] * weights[..., None]).sum(axis=1)  # [M, C]


def knn_votes(
    train_features: np.ndarray,
    train_targets: np.ndarray,
    test_features: np.ndarray,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 512,
) -> np.ndarray:
    """Class scores [M, C]: the targets [N, C] (one-hot or multi-hot) of the k most similar
    train features, weighted by exp(similarity / temperature) and summed."""
    k = min(k, len(train_features))
    train = l2_normalize(jnp.asarray(train_features, jnp.float32))
    targets = jnp.asarray(train_targets, jnp.float32)
    test = np.asarray(test_features, np.float32)
    votes = []
    for start in range(0, len(test), chunk):  # fixed chunk shape: one compilation
        q = test[start : start + chunk]
        q = np.pad(q, ((0, chunk - len(q)), (0, 0))) if len(q) < chunk else q
        v = _votes_chunk(train, targets, jnp.asarray(q), k, temperature)
        votes.append(np.asarray(v)[: min(chunk, len(test) - start)])
    return np.concatenate(votes)


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
    one_hot = np.eye(num_classes, dtype=np.float32)[np.asarray(train_labels)]
    votes = knn_votes(train_features, one_hot, test_features, k, temperature, chunk)
    return votes.argmax(axis=-1)


def knn_accuracy(train_features, train_labels, test_features, test_labels, **kwargs) -> float:
    preds = knn_predict(train_features, train_labels, test_features, **kwargs)
    return float(np.mean(preds == np.asarray(test_labels)))
