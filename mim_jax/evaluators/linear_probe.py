"""Linear probe: multinomial logistic regression on frozen features, fit to convergence
(or, for multi-label data, one-vs-rest logistic regression scored by mAP).

Features are centred and PCA-whitened with train statistics. Whitening is an invertible
linear map, so the probe is still a linear classifier of the raw features; it only makes
the problem well conditioned, so that full-batch L-BFGS converges in ~100 iterations
(standardised features needed >1000). The L2 strength is picked on a held-out 10% of the
train split and the final probe is refit on the whole train split.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mim_jax.evaluators import classification

EIG_FLOOR = 1e-4  # eigenvalues below this fraction of the largest are floored (dead pixels)


@functools.partial(jax.jit, static_argnames=("num_classes", "max_steps"))
def fit(
    x: jax.Array, y: jax.Array, l2: float, num_classes: int, max_steps: int, tol: float = 1e-5
) -> dict:
    """{"w": [D, C], "b": [C]} minimising mean cross-entropy + l2 * |w|^2 (L-BFGS, stops
    when the gradient norm falls below `tol`). y: labels [N] (softmax), or multi-hot
    targets [N, C] (independent sigmoids, binary cross-entropy summed over classes)."""

    def objective(p):
        logits = x @ p["w"] + p["b"]
        if y.ndim == 2:
            ce = optax.sigmoid_binary_cross_entropy(logits, y).sum(-1).mean()
        else:
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return ce + l2 * jnp.sum(p["w"] ** 2)

    params = {"w": jnp.zeros((x.shape[1], num_classes)), "b": jnp.zeros((num_classes,))}
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry):
        p, state, i, _ = carry
        value, grad = value_and_grad(p, state=state)
        updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=objective)
        return optax.apply_updates(p, updates), state, i + 1, optax.global_norm(grad)

    def not_done(carry):
        _, _, i, grad_norm = carry
        return (i < max_steps) & (grad_norm > tol)

    init = (params, opt.init(params), jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf))
    return jax.lax.while_loop(not_done, step, init)[0]


def whiten(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Centre and PCA-whiten with the train split's covariance (float64 eigh).

    With more dimensions than examples (raw pixels, log-mels) the principal axes come
    from the n x n Gram matrix instead of the d x d covariance: the same whitening of the
    train span (the only part an L-BFGS probe started at zero ever weights), at O(n^2 d).
    """
    mean = train.mean(0, dtype=np.float64)
    centred = (train - mean).astype(np.float64)
    n, d = centred.shape
    if d <= n:
        eigval, axes = np.linalg.eigh(centred.T @ centred / n)
    else:
        eigval, u = np.linalg.eigh(centred @ centred.T / n)
        keep = eigval > max(1e-10 * eigval.max(), 0.0)  # the span's directions
        if not keep.any():  # constant features: nothing to whiten, nothing to learn
            return [np.zeros((len(a), 1), np.float32) for a in (train, *others)]
        eigval, u = eigval[keep], u[:, keep]
        axes = centred.T @ u / np.sqrt(n * eigval)  # [d, k] unit principal axes
    eigval = np.maximum(eigval, EIG_FLOOR * max(eigval.max(), 1e-12))
    w = (axes / np.sqrt(eigval)).astype(np.float32)
    return [((a - mean) @ w).astype(np.float32) for a in (train, *others)]


def score(params: dict, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy for labels [N]; mAP for multi-hot targets [N, C]."""
    logits = np.asarray(x @ params["w"] + params["b"])
    if y.ndim == 2:
        return classification.mean_average_precision(logits, y)["mAP"]
    return float(np.mean(logits.argmax(-1) == y))


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    num_classes: int,
    l2_grid=(1e-5, 1e-4, 1e-3, 1e-2),
    max_steps: int = 200,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, float]:
    """Test score of the probe ("top1" for labels [N], "mAP" for multi-hot targets
    [N, C]) and the L2 strength chosen on a held-out train split."""
    train_x, test_x = (np.asarray(a, np.float32) for a in (train_x, test_x))
    multilabel = np.ndim(train_y) == 2
    dtype = np.float32 if multilabel else np.int32
    train_y, test_y = (np.asarray(a, dtype) for a in (train_y, test_y))
    best_l2 = l2_grid[0]
    if len(l2_grid) > 1:
        perm = np.random.default_rng(seed).permutation(len(train_x))
        n_val = max(1, int(len(train_x) * val_fraction))
        fit_idx, val_idx = perm[n_val:], perm[:n_val]
        fx, vx = whiten(train_x[fit_idx], train_x[val_idx])
        scores = [
            score(fit(fx, train_y[fit_idx], l2, num_classes, max_steps), vx, train_y[val_idx])
            for l2 in l2_grid
        ]
        best_l2 = l2_grid[int(np.argmax(scores))]
    tx, ex = whiten(train_x, test_x)
    params = fit(tx, train_y, best_l2, num_classes, max_steps)
    name = "mAP" if multilabel else "top1"
    return {name: score(params, ex, test_y), "l2": float(best_l2)}
