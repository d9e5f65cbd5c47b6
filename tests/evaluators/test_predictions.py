import jax.numpy as jnp
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


def test_multi_view_scores_average_the_softmax_of_each_videos_own_views():
    # 3 videos x 4 views; each view's logits encode (video, view) so mixing would show
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 5)).astype(np.float32)
    views = np.arange(12, dtype=np.float32).reshape(3, 4, 1, 1)  # the input says which view
    predict = lambda params, state, x: jnp.asarray(logits.reshape(12, 5))[x[:, 0, 0].astype(int)]
    out = np.asarray(predictions.view_predict_fn(predict)(None, {}, jnp.asarray(views)))
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(out, np.log(softmax.mean(axis=1)), rtol=1e-5)
    assert not np.allclose(out, np.log(softmax.mean(axis=(0, 1)))[None])


def test_multi_label_scores_are_sklearns_macro_average_precision():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    targets = (rng.random((50, 6)) < 0.3).astype(np.int32)
    targets[0] = 1  # every class has a positive
    logits = rng.normal(size=(50, 6)) + 2 * targets
    out = predictions.scores(logits, targets)
    assert out["mAP"] == pytest.approx(average_precision_score(targets, logits, average="macro"))
    assert out["num_examples"] == 50 and "top1" not in out


def test_single_label_scores_of_a_multi_label_classifier_add_map():
    logits = np.array([[2.0, 1, 0], [0.0, 3, 1], [1.0, 0, 2], [0.0, 2, 1]])
    out = predictions.scores(logits, np.array([0, 1, 2, 2]), multilabel=True)
    assert out["top1"] == 0.75 and 0 < out["mAP"] < 1
