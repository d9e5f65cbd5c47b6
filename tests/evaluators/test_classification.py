import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from mim_jax.evaluators import classification


@pytest.mark.parametrize("seed", range(4))
def test_average_precision_equals_scikit_learn_with_ties(seed):
    rng = np.random.default_rng(seed)
    targets = rng.random(200) < 0.2
    targets[0] = True
    scores = np.round(rng.normal(size=200) + targets, 1)  # rounding makes ties
    expected = average_precision_score(targets, scores)
    assert classification.average_precision(scores, targets) == pytest.approx(expected, abs=1e-12)


def test_mean_average_precision_averages_the_classes_with_positives():
    rng = np.random.default_rng(0)
    targets = (rng.random((100, 5)) < 0.3).astype(int)
    targets[:, 4] = 0  # a class with no positives
    scores = rng.normal(size=(100, 5)) + targets
    out = classification.mean_average_precision(scores, targets)
    expected = np.mean([average_precision_score(targets[:, c], scores[:, c]) for c in range(4)])
    assert out["mAP"] == pytest.approx(expected) and out["classes_without_positives"] == 1


def test_perfect_and_inverted_rankings():
    targets = np.array([1, 1, 0, 0])
    assert classification.average_precision([4, 3, 2, 1], targets) == 1.0
    assert classification.average_precision([1, 2, 3, 4], targets) == pytest.approx(
        (1 / 3 + 2 / 4) / 2
    )


def test_top_k_accuracy():
    logits = np.array([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4], [0.2, 0.3, 0.5]])
    labels = np.array([1, 2, 0])
    assert classification.top_k_accuracy(logits, labels, 1) == pytest.approx(1 / 3)
    assert classification.top_k_accuracy(logits, labels, 2) == pytest.approx(2 / 3)


def test_multilabel_probes_report_map():
    from mim_jax.evaluators import knn, linear_probe

    rng = np.random.default_rng(0)
    targets = (rng.random((300, 4)) < 0.3).astype(np.float32)
    features = targets @ rng.normal(size=(4, 16)) + 0.3 * rng.normal(size=(300, 16))
    votes = knn.knn_votes(features[:200], targets[:200], features[200:], k=10)
    assert votes.shape == (100, 4)
    knn_map = classification.mean_average_precision(votes, targets[200:])["mAP"]
    probe = linear_probe.linear_probe(
        features[:200], targets[:200], features[200:], targets[200:], 4
    )
    assert knn_map > 0.8 and probe["mAP"] > 0.9  # chance is ~0.3
