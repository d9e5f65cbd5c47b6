import grain
import numpy as np
import pytest

from mim_jax.data import sampling, sources


def test_balanced_weights_match_a_hand_computed_example():
    label_ids = [[0], [0, 1], [2], [1], []]
    np.testing.assert_array_equal(sampling.label_counts(label_ids, 4), [2, 2, 1, 0])
    a, b = 1000 / 2.01, 1000 / 1.01  # 1000 / (count + 0.01) for counts 2 and 1
    expected = [a, 2 * a, b, a, 0.0]
    np.testing.assert_allclose(sampling.balanced_weights(label_ids, 4), expected, rtol=1e-12)
    np.testing.assert_allclose(sampling.balanced_weights(label_ids), expected, rtol=1e-12)


def test_label_ids_outside_the_classes_are_rejected():
    with pytest.raises(ValueError, match="num_classes=2"):
        sampling.label_counts([[0], [2]], 2)
    with pytest.raises(ValueError, match="negative"):
        sampling.label_counts([[-1]])


class _Listed:
    def __init__(self):
        self.label_ids = [[3, 1], [0]]

    def __len__(self):
        return 2

    def __getitem__(self, i):
        raise AssertionError("label_ids must be used without reading elements")


class _Elements:
    """Multi-hot "labels", a plain "label", and an unreadable element."""

    def __len__(self):
        return 3

    def __getitem__(self, i):
        if i == 0:
            return {"labels": np.array([0, 1, 0, 1], np.uint8), "label": 1}
        if i == 1:
            return {"label": np.int32(2)}
        return {"error": "unreadable", "path": "x.wav"}


def test_source_label_ids_prefers_cheap_attributes_then_reads_elements():
    assert sampling.source_label_ids(_Listed()) == [[3, 1], [0]]
    array = sources.ArraySource(np.zeros((3, 2, 2), np.uint8), np.array([2, 0, 1]))
    assert sampling.source_label_ids(array) == [[2], [0], [1]]
    assert sampling.source_label_ids(_Elements()) == [[1, 3], [2], []]


def _sampler(weights, seed=0, epoch_len=0):
    parent = grain.MapDataset.range(len(weights))
    return sampling.WeightedSampler(parent, np.asarray(weights, float), seed, epoch_len)


def test_sampler_frequencies_follow_the_weights():
    weights = np.array([1.0, 2.0, 3.0, 4.0, 0.0])
    ds = _sampler(weights, seed=1, epoch_len=1000)
    draws = np.array([ds[k] for k in range(4000)])  # four epochs
    observed = np.bincount(draws, minlength=5)
    assert observed[4] == 0  # weight 0: never drawn
    expected = 4000 * weights[:4] / weights.sum()
    chi2 = ((observed[:4] - expected) ** 2 / expected).sum()
    assert chi2 < 16.27  # chi-square, 3 degrees of freedom, p = 0.001


def test_sampler_epochs_are_the_documented_draws():
    weights = np.array([5.0, 1.0, 1.0, 3.0])
    ds = _sampler(weights, seed=7, epoch_len=6)
    for epoch in range(3):
        p = weights / weights.sum()
        want = np.random.default_rng([7, epoch]).choice(4, 6, p=p, replace=True)
        np.testing.assert_array_equal(ds.epoch_indices(epoch), want)
        np.testing.assert_array_equal([ds[6 * epoch + i] for i in range(6)], want)
    assert _sampler(weights).epoch_len == 4  # 0: the dataset size


def test_sampler_is_deterministic_in_seed_and_position():
    weights = np.arange(1.0, 21.0)
    a, b, c = _sampler(weights, 3, 50), _sampler(weights, 3, 50), _sampler(weights, 4, 50)
    positions = [0, 49, 50, 777, 123, 51, 2]  # any order, across epochs
    assert [a[k] for k in positions] == [b[k] for k in reversed(positions)][::-1]
    assert [a[k] for k in range(200)] != [c[k] for k in range(200)]


def test_sampler_stream_restores_from_the_grain_iterator_state():
    ds = _sampler(np.arange(1.0, 11.0), seed=2, epoch_len=7).map(lambda x: x * 10)
    it = iter(ds.to_iter_dataset())
    for _ in range(9):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(12)]
    fresh = iter(ds.to_iter_dataset())
    fresh.set_state(state)
    assert [next(fresh) for _ in range(12)] == expected


def test_sampler_rejects_bad_weights_and_epoch_len():
    with pytest.raises(ValueError, match="3 weights for 4"):
        sampling.WeightedSampler(grain.MapDataset.range(4), np.ones(3), 0)
    with pytest.raises(ValueError, match="not all 0"):
        _sampler([0.0, 0.0])
    with pytest.raises(ValueError, match="config.data.epoch_len"):
        _sampler([1.0], epoch_len=-1)
