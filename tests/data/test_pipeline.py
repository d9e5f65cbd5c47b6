import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from mim_jax.data import pipeline, sources

DATA = ConfigDict(
    dict(
        image_size=8,
        channels=1,
        crop_scale=(0.5, 1.0),
        crop_ratio=(0.75, 1.333),
        flip=True,
        eval_crop_pct=1.0,
        read_threads=2,
        num_workers=0,
    )
)


def _source(n=20):
    images = np.random.default_rng(0).integers(0, 255, (n, 8, 8), dtype=np.uint8)
    return sources.ArraySource(images, np.arange(n))


def test_train_batches_are_uint8_and_deterministic_in_the_seed():
    a = iter(pipeline.train_dataset(_source(), DATA, 4, seed=3))
    b = iter(pipeline.train_dataset(_source(), DATA, 4, seed=3))
    c = iter(pipeline.train_dataset(_source(), DATA, 4, seed=4))
    first_a, first_b, first_c = next(a), next(b), next(c)
    assert first_a["image"].shape == (4, 8, 8, 1) and first_a["image"].dtype == np.uint8
    np.testing.assert_array_equal(first_a["image"], first_b["image"])
    assert not np.array_equal(first_a["label"], first_c["label"])


def test_every_example_once_per_epoch_in_a_new_order():
    it = iter(pipeline.train_dataset(_source(20), DATA, 4, seed=0))
    epoch1 = np.concatenate([next(it)["label"] for _ in range(5)])
    epoch2 = np.concatenate([next(it)["label"] for _ in range(5)])
    assert sorted(epoch1) == sorted(epoch2) == list(range(20))
    assert not np.array_equal(epoch1, epoch2)


def test_iterator_state_restores_the_stream():
    it = iter(pipeline.train_dataset(_source(), DATA, 4, seed=0))
    next(it)
    state = it.get_state()
    expected = [next(it)["image"] for _ in range(3)]
    fresh = iter(pipeline.train_dataset(_source(), DATA, 4, seed=0))
    fresh.set_state(state)
    for want in expected:
        np.testing.assert_array_equal(next(fresh)["image"], want)


def test_eval_batches_pad_the_last_batch_and_report_valid_rows():
    batches = list(pipeline.eval_batches(_source(10), DATA, 4))
    assert [valid for _, valid in batches] == [4, 4, 2]
    assert all(len(b["label"]) == 4 for b, _ in batches)
    labels = np.concatenate([b["label"][:v] for b, v in batches])
    np.testing.assert_array_equal(labels, np.arange(10))
    assert [v for _, v in pipeline.eval_batches(_source(10), DATA, 4, max_examples=5)] == [4, 1]


def test_normalize_round_trip():
    images = np.random.default_rng(0).integers(0, 255, (2, 4, 4, 3), dtype=np.uint8)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    x = pipeline.normalize(jnp.asarray(images), mean, std)
    np.testing.assert_allclose(
        x[0, 0, 0], (images[0, 0, 0] / 255 - np.array(mean)) / np.array(std), atol=1e-6
    )
    np.testing.assert_array_equal(pipeline.denormalize(x, mean, std), images)
