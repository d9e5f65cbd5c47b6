import numpy as np
import pytest

from mim_jax.evaluators import few_shot


@pytest.mark.parametrize("n", [6, 40])  # the N x N (n <= d) and the D x D branch
def test_least_squares_solves_the_regularised_normal_equations(n):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, 12)), rng.integers(0, 3, n)
    w, b, mean = few_shot.fit_least_squares(x, y, 3, l2=0.5)
    t = -np.ones((n, 3))
    t[np.arange(n), y] = 1
    xc = x - x.mean(0)
    # gradient of |xc w + b - t|^2 + l2 |w|^2 vanishes at the solution
    np.testing.assert_allclose(xc.T @ (xc @ w + b - t) + 0.5 * w, 0.0, atol=1e-9)
    np.testing.assert_allclose(b, t.mean(0))
    np.testing.assert_allclose(mean, x.mean(0))


def test_sample_shots_takes_k_distinct_examples_per_class():
    labels = np.repeat(np.arange(4), 10)
    picks = few_shot.sample_shots(labels, 3, np.random.default_rng(0))
    assert len(set(picks)) == 12 and np.bincount(labels[picks]).tolist() == [3, 3, 3, 3]
    with pytest.raises(ValueError, match="fewer than 11"):
        few_shot.sample_shots(labels, 11, np.random.default_rng(0))


def test_few_shot_separates_clustered_classes_and_improves_with_shots():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 16)) * 3

    def draw(n):
        y = rng.integers(0, 5, n)
        return centres[y] + rng.normal(size=(n, 16)) * 2.5, y

    (tx, ty), (ex, ey) = draw(2000), draw(500)
    out = few_shot.few_shot(tx, ty, ex, ey, 5, shots=(1, 25), trials=3)
    assert set(out) == {"fewshot_1", "fewshot_1_l2", "fewshot_25", "fewshot_25_l2"}
    assert out["fewshot_25"] > 0.8 and out["fewshot_25"] > out["fewshot_1"] > 0.2
