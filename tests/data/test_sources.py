from pathlib import Path

import numpy as np
import pytest
from ml_collections import ConfigDict

from mim_jax.data import sources
from tests.conftest import write_idx

DEBIAN = Path(sources.FASHION_MNIST_DIR)


@pytest.mark.parametrize("name", ["x-idx3-ubyte.gz", "x-idx3-ubyte"])
def test_read_idx_round_trip(tmp_path, name):
    array = np.random.default_rng(0).integers(0, 255, (5, 4, 3)).astype(np.uint8)
    write_idx(tmp_path / name, array)
    np.testing.assert_array_equal(sources.read_idx(tmp_path / name), array)


def test_read_idx_names_the_file_on_bad_input(tmp_path):
    bad = tmp_path / "bad-idx1-ubyte"
    bad.write_bytes(b"\x01\x02\x03\x04hello")
    with pytest.raises(ValueError, match="bad-idx1-ubyte.*magic"):
        sources.read_idx(bad)
    short = tmp_path / "short-idx1-ubyte"
    short.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))
    with pytest.raises(ValueError, match="short-idx1-ubyte"):
        sources.read_idx(short)


def test_fashion_mnist_from_a_root(fake_fmnist):
    train = sources.fashion_mnist("train", root=str(fake_fmnist))
    assert len(train) == 512
    item = train[3]
    assert item["image"].shape == (28, 28, 1) and item["image"].dtype == np.uint8
    assert 0 <= item["label"] < 4


def test_a_root_without_files_says_which_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.data.root"):
        sources.fashion_mnist("train", root=str(tmp_path))


def test_missing_everywhere_gives_one_clear_message(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "FASHION_MNIST_DIR", str(tmp_path / "absent"))

    def no_network(*args, **kwargs):
        raise ConnectionError("no internet")

    monkeypatch.setattr(sources, "TfdsSource", no_network)
    with pytest.raises(FileNotFoundError) as err:
        sources.fashion_mnist("test")
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message and "no internet" in message


def test_falls_back_to_tfds(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "FASHION_MNIST_DIR", str(tmp_path / "absent"))

    class FakeTfds:
        def __init__(self, name, split, download=False):
            assert (name, split, download) == ("fashion_mnist", "test", True)

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"image": np.full((28, 28, 1), i, np.uint8), "label": i}

    monkeypatch.setattr(sources, "TfdsSource", FakeTfds)
    source = sources.fashion_mnist("test")
    assert len(source) == 3 and source[2]["image"][0, 0, 0] == 2 and source[2]["label"] == 2


def test_synthetic_is_deterministic_per_index():
    a = sources.SyntheticSource(10, (8, 8, 3), 5, seed=1)
    b = sources.SyntheticSource(10, (8, 8, 3), 5, seed=1)
    np.testing.assert_array_equal(a[7]["image"], b[7]["image"])
    assert not np.array_equal(a[7]["image"], a[6]["image"])
    assert a[7]["image"].shape == (8, 8, 3) and a[7]["image"].dtype == np.uint8


def test_build_synthetic_splits_differ():
    data = ConfigDict(
        dict(
            name="synthetic",
            image_size=4,
            channels=1,
            num_classes=3,
            synthetic_examples=6,
            train_split="train",
            eval_split="test",
        )
    )
    train, test = sources.build(data, "train", 0), sources.build(data, "test", 0)
    assert len(train) == 6 and not np.array_equal(train[0]["image"], test[0]["image"])


@pytest.mark.skipif(
    not DEBIAN.is_dir(), reason="Debian package dataset-fashion-mnist not installed"
)
def test_real_fashion_mnist_from_the_debian_package():
    train, test = sources.fashion_mnist("train"), sources.fashion_mnist("test")
    assert (len(train), len(test)) == (60000, 10000)
    assert np.bincount(train.labels).tolist() == [6000] * 10


def test_tfds_source_reads_image_and_label_without_tensorflow():
    import tensorflow_datasets as tfds

    from mim_jax.data import pipeline

    data = ConfigDict(
        dict(
            name="tfds",
            tfds_name="imagenet2012",
            tfds_data_dir=None,
            image_size=32,
            channels=3,
            crop_scale=(0.2, 1.0),
            crop_ratio=(0.75, 1.333),
            flip=True,
            read_threads=1,
            num_workers=0,
        )
    )
    with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
        source = sources.build(data, "train", seed=0)
        item = source[0]
        assert set(item) == {"image", "label"} and item["image"].dtype == np.uint8
        assert item["image"].ndim == 3
        batch = next(iter(pipeline.train_dataset(source, data, 4, seed=0)))
    assert batch["image"].shape == (4, 32, 32, 3)
