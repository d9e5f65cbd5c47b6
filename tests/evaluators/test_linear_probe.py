import numpy as np

from mim_jax.evaluators import linear_probe


def _data(n, seed, informative=3, noise_dims=20):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.eye(3, informative) * 3.0
    x = np.concatenate(
        [centers[y] + rng.normal(size=(n, informative)), rng.normal(size=(n, noise_dims))], 1
    )
    return x * rng.uniform(0.01, 100, x.shape[1]), y  # badly scaled features


def test_probe_learns_a_linearly_separable_problem_despite_bad_scaling():
    x, y = _data(1200, 0)
    out = linear_probe.linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], num_classes=3)
    assert out["top1"] > 0.9
    assert out["l2"] in (1e-5, 1e-4, 1e-3, 1e-2)


def test_fit_converges_to_the_optimum():
    x, y = _data(500, 1)
    (xw,) = linear_probe.whiten(x)
    params = linear_probe.fit(xw, y, 1e-3, num_classes=3, max_steps=500)
    # at the optimum of mean CE + l2 |w|^2 the gradient vanishes
    logits = xw @ params["w"] + params["b"]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    grad_w = xw.T @ p / len(y) + 2e-3 * np.asarray(params["w"])
    assert np.abs(grad_w).max() < 1e-3


def test_whitening_gives_identity_covariance():
    x, _ = _data(2000, 2)
    (xw,) = linear_probe.whiten(x)
    np.testing.assert_allclose(np.cov(xw.T, bias=True), np.eye(x.shape[1]), atol=1e-3)


def test_whitening_with_more_dimensions_than_examples_whitens_the_train_span():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(20, 50)) @ rng.normal(size=(50, 50))
    test = rng.normal(size=(5, 50))
    white_train, white_test = linear_probe.whiten(train, test)
    assert white_train.shape == (20, 19) and white_test.shape == (5, 19)  # rank n - 1
    np.testing.assert_allclose(np.cov(white_train.T, bias=True), np.eye(19), atol=1e-4)


def test_whitening_constant_features_gives_an_empty_representation():
    train = np.ones((4, 10), np.float32)
    white_train, white_test = linear_probe.whiten(train, np.ones((2, 10), np.float32))
    assert not white_train.any() and white_test.shape == (2, 1)
