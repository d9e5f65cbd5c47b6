from pathlib import Path

import numpy as np
import pytest
from ml_collections import ConfigDict

from mim_jax.data import sources
from tests.conftest import write_idx
from tests.data.image_tree import jpeg_bytes, write_tree

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
            num_frames=0,
            num_mel_bins=0,
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
    from tests.data.test_pipeline import DATA

    tfds_keys = dict(name="tfds", tfds_name="imagenet2012", tfds_data_dir=None)
    data = ConfigDict({**DATA.to_dict(), **tfds_keys, "image_size": 32, "channels": 3})
    with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
        source = sources.build(data, "train", seed=0)
        item = source[0]
        assert set(item) == {"image", "label"} and item["image"].dtype == np.uint8
        assert item["image"].ndim == 3
        batch = next(iter(pipeline.train_dataset(source, data, 4, seed=0)))
    assert batch["image"].shape == (4, 32, 32, 3)


# ------------------------------------------------------------------ image folders
def test_folder_source_lists_classes_sorted_and_returns_bytes(tmp_path):
    write_tree(tmp_path, "train", {"dog": 2, "cat": 3})
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    src = sources.FolderSource(str(tmp_path), "train", cache_dir=str(tmp_path / "cache"))
    assert src.classes == ["cat", "dog"] and len(src) == 5
    labels = [int(src[i]["label"]) for i in range(5)]
    assert labels == [0, 0, 0, 1, 1]
    ex = src[3]
    assert ex["path"].endswith("dog/img_000.JPEG")
    assert ex["encoded"] == (tmp_path / "train" / "dog" / "img_000.JPEG").read_bytes()


def test_folder_index_is_cached_and_refreshed_when_a_class_dir_changes(tmp_path, monkeypatch):
    write_tree(tmp_path, "train", {"a": 2, "b": 2})
    cache = tmp_path / "cache"
    assert len(sources.FolderSource(str(tmp_path), "train", str(cache))) == 4
    calls = []
    real = sources.list_class_files
    monkeypatch.setattr(sources, "list_class_files", lambda d, *a: calls.append(d) or real(d, *a))
    assert len(sources.FolderSource(str(tmp_path), "train", str(cache))) == 4
    assert calls == []  # served from the cache, no listing
    import os
    import time

    (tmp_path / "train" / "b" / "new.png").write_bytes(jpeg_bytes(9))
    os.utime(tmp_path / "train" / "b", ns=(time.time_ns(), time.time_ns() + 10**9))
    assert len(sources.FolderSource(str(tmp_path), "train", str(cache))) == 5
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "has no 'train' directory"),
        ("no_classes", "No class subdirectories"),
        ("empty_classes", "No files"),
    ],
)
def test_folder_errors_say_what_was_looked_for(tmp_path, layout, message):
    if layout != "missing":
        (tmp_path / "train").mkdir()
    if layout == "empty_classes":
        (tmp_path / "train" / "cat").mkdir()
    with pytest.raises(FileNotFoundError, match=message):
        sources.FolderSource(str(tmp_path), "train", cache_dir=str(tmp_path / "cache"))


# ------------------------------------------------------------------ ArrayRecord
def test_convert_writes_array_records_that_read_back_and_skips_bad_files(tmp_path):
    from mim_jax.data import convert

    src = tmp_path / "src"
    write_tree(
        src, "train", {"a": 3, "b": 4}, bad={"a/zero.jpg": b"", "b/trunc.jpg": jpeg_bytes(1)[:200]}
    )
    write_tree(src, "val", {"a": 1, "b": 1})
    info = convert.convert(str(src), str(tmp_path / "ar"), ["train", "val"], 0.01, 2, True)
    assert info["classes"] == ["a", "b"]
    assert info["splits"]["train"]["num_examples"] == 7
    assert sorted(s["path"] for s in info["splits"]["train"]["skipped"]) == [
        "a/zero.jpg",
        "b/trunc.jpg",
    ]
    assert len(info["splits"]["train"]["files"]) > 1  # ~10 KB shards: several

    ar = sources.ArrayRecordSource(str(tmp_path / "ar"), "train")
    folder = sources.FolderSource(str(src), "train", cache_dir=str(tmp_path / "cache"))
    good = {folder[i]["path"].split("train/")[1]: folder[i] for i in range(len(folder))}
    assert len(ar) == 7
    for i in range(len(ar)):
        rec = ar[i]
        assert rec["encoded"] == good[rec["path"]]["encoded"]
        assert rec["label"] == good[rec["path"]]["label"]
    assert len(sources.ArrayRecordSource(str(tmp_path / "ar"), "val")) == 2


def test_array_record_without_info_names_the_converter(tmp_path):
    with pytest.raises(FileNotFoundError, match="mim_jax.data.convert"):
        sources.ArrayRecordSource(str(tmp_path), "train")
