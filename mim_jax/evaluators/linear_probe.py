"""Linear probe: multinomial logistic regression on frozen features, fit to convergence.

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

EIG_FLOOR = 1e-4  # eigenvalues below this fraction of the largest are floored (dead pixels)


@functools.partial(jax.jit, static_argnames=("num_classes", "max_steps"))
def fit(
    x: jax.Array, y: jax.Array, l2: float, num_classes: int, max_steps: int, tol: float = 1e-5
) -> dict:
    """{"w": [D, C], "b": [C]} minimising mean cross-entropy + l2 * |w|^2 (L-BFGS, stops
    when the gradient norm falls below `tol`)."""

    def objective(p):
        logits = x @ p["w"] + p["b"]
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
    """Centre and PCA-whiten with the train split's covariance (float64 eigh)."""
    mean = train.mean(0, dtype=np.float64)
    centred = train - mean
    cov = centred.T.astype(np.float64) @ centred / len(train)
    eigval, eigvec = np.linalg.eigh(cov)
    eigval = np.maximum(eigval, EIG_FLOOR * max(eigval.max(), 1e-12))
    w = (eigvec / np.sqrt(eigval)).astype(np.float32)
    return [((a - mean) @ w).astype(np.float32) for a in (train, *others)]


def accuracy(params: dict, x: np.ndarray, y: np.ndarray) -> float:
    logits = np.asarray(x @ params["w"] + params["b"])
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
    """Test top-1 of the probe and the L2 strength chosen on a held-out train split."""
    train_x, test_x = (np.asarray(a, np.float32) for a in (train_x, test_x))
    train_y, test_y = (np.asarray(a, np.int32) for a in (train_y, test_y))
    best_l2 = l2_grid[0]
    if len(l2_grid) > 1:
        perm = np.random.default_rng(seed).permutation(len(train_x))
        n_val = max(1, int(len(train_x) * val_fraction))
        fit_idx, val_idx = perm[n_val:], perm[:n_val]
        fx, vx = whiten(train_x[fit_idx], train_x[val_idx])
        scores = [
            accuracy(fit(fx, train_y[fit_idx], l2, num_classes, max_steps), vx, train_y[val_idx])
            for l2 in l2_grid
        ]
        best_l2 = l2_grid[int(np.argmax(scores))]
    tx, ex = whiten(train_x, test_x)
    params = fit(tx, train_y, best_l2, num_classes, max_steps)
    return {"top1": accuracy(params, ex, test_y), "l2": float(best_l2)}
