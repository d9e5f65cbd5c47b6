import numpy as np

from mim_jax.evaluators import knn


def brute_force(train, train_y, test, num_classes, k, t):
    tn = train / np.linalg.norm(train, axis=1, keepdims=True)
    qn = test / np.linalg.norm(test, axis=1, keepdims=True)
    preds = []
    for q in qn:
        sims = tn @ q
        top = np.argsort(-sims)[:k]
        votes = np.zeros(num_classes)
        for i in top:
            votes[train_y[i]] += np.exp(sims[i] / t)
        preds.append(votes.argmax())
    return np.array(preds)


def test_matches_a_brute_force_weighted_vote():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(300, 6)), rng.normal(size=(37, 6))
    train_y = rng.integers(0, 4, 300)
    preds = knn.knn_predict(train, train_y, test, num_classes=4, k=7, temperature=0.1, chunk=16)
    np.testing.assert_array_equal(preds, brute_force(train, train_y, test, 4, 7, 0.1))


def test_separable_clusters_are_classified_perfectly():
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(3, 10)) * 5
    y = rng.integers(0, 3, 200)
    x = centers[y] + rng.normal(size=(200, 10)) * 0.1
    assert knn.knn_accuracy(x[:150], y[:150], x[150:], y[150:], num_classes=3) == 1.0
