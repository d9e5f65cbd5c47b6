import numpy as np
import pytest

from mim_jax.evaluators import predictions


def test_scores_top1_top5_and_cross_entropy_by_hand():
    logits = np.array(
        [
            [5.0, 4, 3, 2, 1, 0],  # label 0: the highest score, top-1
            [0.0, 5, 4, 3, 2, 1],  # label 0: the lowest of 6, not in the top 5
            [0.0, 1, 2, 3, 4, 5],  # label 1: the 5th highest, top-5 only
        ]
    )
    labels = np.array([0, 0, 1])
    out = predictions.scores(logits, labels)
    assert out["top1"] == pytest.approx(1 / 3) and out["top5"] == pytest.approx(2 / 3)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert out["eval_loss"] == pytest.approx(-log_p[np.arange(3), labels].mean())
    assert out["num_examples"] == 3
