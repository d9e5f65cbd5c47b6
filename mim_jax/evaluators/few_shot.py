"""Few-shot linear classification on frozen features: closed-form regularised least squares
onto {-1, +1} class targets (ViT, Dosovitskiy et al. 2021, Sec. 4.1 / big_vision's
fewshot_lsr), from k examples per class, averaged over random draws of the shots.

The L2 strength is chosen on held-out train examples that are never among the shots, so
the test split is used once, for the reported score.
"""

import numpy as np

L2_GRID = tuple(2.0**k for k in range(-6, 11, 2))


def fit_least_squares(x: np.ndarray, y: np.ndarray, num_classes: int, l2: float) -> tuple:
    """(w [D, C], b [C], mean [D]) minimising |(x - mean) w + b - t|^2 + l2 |w|^2 with
    t = +1 for the label and -1 elsewhere. x [N, D], y [N]; solved in the smaller of the
    N x N and D x D systems."""
    x = np.asarray(x, np.float64)
    mean = x.mean(0)
    xc = x - mean
    t = -np.ones((len(y), num_classes))
    t[np.arange(len(y)), y] = 1.0
    b = t.mean(0)
    n, d = xc.shape
    if n <= d:  # w = X^T (X X^T + l2 I)^-1 (t - b)
        w = xc.T @ np.linalg.solve(xc @ xc.T + l2 * np.eye(n), t - b)
    else:
        w = np.linalg.solve(xc.T @ xc + l2 * np.eye(d), xc.T @ (t - b))
    return w, b, mean


def predict(params: tuple, x: np.ndarray) -> np.ndarray:
    w, b, mean = params
    return ((np.asarray(x, np.float64) - mean) @ w + b).argmax(-1)


def sample_shots(labels: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `shots` examples of each class (without replacement)."""
    picks = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < shots:
            raise ValueError(f"class {c} has {len(members)} train examples, fewer than {shots}")
        picks.append(rng.choice(members, shots, replace=False))
    return np.concatenate(picks)


def few_shot(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    num_classes: int,
    shots=(1, 5, 10, 25),
    trials: int = 5,
    val_examples: int = 1000,
    l2_grid=L2_GRID,
    seed: int = 0,
) -> dict[str, float]:
    """{"fewshot_{k}": mean test top-1 over `trials` draws of k shots per class} and the
    chosen L2 strengths ({"fewshot_{k}_l2"}). Features are L2-normalised first."""
    norm = lambda a: a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    train_x, test_x = norm(np.asarray(train_x, np.float64)), norm(np.asarray(test_x, np.float64))
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(train_x))
    n_val = min(val_examples, len(train_x) // 5)
    val, pool = perm[:n_val], perm[n_val:]
    out = {}
    for k in shots:
        draws = [pool[sample_shots(train_y[pool], k, rng)] for _ in range(trials)]
        val_acc = [
            np.mean(
                [
                    np.mean(
                        predict(
                            fit_least_squares(train_x[d], train_y[d], num_classes, l2), train_x[val]
                        )
                        == train_y[val]
                    )
                    for d in draws
                ]
            )
            for l2 in l2_grid
        ]
        l2 = l2_grid[int(np.argmax(val_acc))]
        accs = [
            np.mean(
                predict(fit_least_squares(train_x[d], train_y[d], num_classes, l2), test_x)
                == test_y
            )
            for d in draws
        ]
        out[f"fewshot_{k}"] = float(np.mean(accs))
        out[f"fewshot_{k}_l2"] = float(l2)
    return out
