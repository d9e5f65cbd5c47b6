import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from mim_jax import sharding
from mim_jax.data import pipeline, sources
from tests.data.image_tree import jpeg_bytes, write_tree

DATA = ConfigDict(
    dict(
        image_size=8,
        channels=1,
        crop_scale=(0.5, 1.0),
        crop_ratio=(0.75, 1.333),
        flip=True,
        randaugment="",
        mean=(0.5,),
        eval_crop_pct=1.0,
        read_threads=2,
        num_workers=0,
        num_frames=0,  # images
        num_mel_bins=0,
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


def test_two_processes_each_read_their_own_shard_covering_the_epoch_once(monkeypatch):
    seen = []
    for index in range(2):
        monkeypatch.setattr(pipeline.jax, "process_index", lambda i=index: i)
        monkeypatch.setattr(pipeline.jax, "process_count", lambda: 2)
        it = iter(pipeline.train_dataset(_source(20), DATA, 4, seed=0))  # 2 rows per process
        seen.append(np.concatenate([next(it)["label"] for _ in range(5)]))  # one epoch: 10
    assert len(seen[0]) == len(seen[1]) == 10
    assert sorted(np.concatenate(seen)) == list(range(20))  # disjoint, complete


def test_the_global_batch_is_the_same_for_one_or_two_processes(monkeypatch):
    """Two processes' rows, stacked in process order, are the one-process batch: same
    examples, same crops and flips (augmentation seeded by the global position)."""
    one = iter(pipeline.train_dataset(_source(20), DATA, 4, seed=5))
    single = [next(one) for _ in range(7)]  # past an epoch boundary (5 batches)
    monkeypatch.setattr(pipeline.jax, "process_count", lambda: 2)
    parts = []
    for index in range(2):
        monkeypatch.setattr(pipeline.jax, "process_index", lambda i=index: i)
        it = iter(pipeline.train_dataset(_source(20), DATA, 4, seed=5))
        parts.append([next(it) for _ in range(7)])
    for step, full in enumerate(single):
        for key in ("image", "label"):
            stacked = np.concatenate([parts[0][step][key], parts[1][step][key]])
            np.testing.assert_array_equal(stacked, full[key], err_msg=f"{key}, batch {step}")


def test_a_batch_that_does_not_divide_over_processes_names_the_key(monkeypatch):
    monkeypatch.setattr(pipeline.jax, "process_count", lambda: 3)
    with pytest.raises(ValueError, match=r"config.batch_size=4 must divide over 3 processes"):
        pipeline.train_dataset(_source(20), DATA, 4, seed=0)


def _mesh(devices: int = 8):
    return sharding.make_mesh(ConfigDict(dict(data=-1, fsdp=1)), jax.devices()[:devices])


def test_device_prefetcher_state_is_that_of_the_last_batch_handed_out():
    def fresh():
        host = iter(pipeline.train_dataset(_source(), DATA, 8, seed=0))
        return pipeline.DevicePrefetcher(host, _mesh(), depth=3)

    it = fresh()
    for _ in range(3):
        next(it)
    state = it.get_state()  # 3 batches consumed, 3 more already queued on the devices
    expected = [np.asarray(next(it)["image"]) for _ in range(2)]
    restored = fresh()
    restored.set_state(state)
    for want in expected:
        batch = next(restored)
        assert batch["image"].sharding.is_equivalent_to(sharding.batch_sharding(_mesh()), 4)
        np.testing.assert_array_equal(np.asarray(batch["image"]), want)


def _folder_data(size=16):
    return ConfigDict({**DATA.to_dict(), "image_size": size, "channels": 3})


def test_unreadable_images_are_skipped_counted_and_logged(tmp_path, caplog):
    bad = {"a/empty.jpg": b"", "b/broken.jpg": jpeg_bytes(3)[:150]}
    write_tree(tmp_path, "train", {"a": 3, "b": 3}, bad=bad)
    source = sources.FolderSource(str(tmp_path), "train", cache_dir=str(tmp_path / "c"))
    host = iter(pipeline.train_dataset(source, _folder_data(), 6, seed=0))
    it = pipeline.DevicePrefetcher(host, _mesh(1), depth=1)
    batches = [next(it) for _ in range(5)]  # one epoch of the 6 good images per batch
    assert all(b["image"].shape == (6, 16, 16, 3) for b in batches)
    assert 8 <= it.bad_examples <= 10  # 2 per epoch; the last epoch's may come after
    logged = caplog.text
    assert "empty.jpg" in logged and "broken.jpg" in logged and "Skipping unreadable" in logged


def test_a_mostly_broken_dataset_stops_with_a_clear_error(tmp_path):
    bad = {f"a/bad{i}.jpg": b"junk" for i in range(8)}
    write_tree(tmp_path, "train", {"a": 2}, bad=bad)
    source = sources.FolderSource(str(tmp_path), "train", cache_dir=str(tmp_path / "c"))
    host = iter(pipeline.train_dataset(source, _folder_data(), 2, seed=0))
    it = pipeline.DevicePrefetcher(host, _mesh(1), depth=1, max_bad_fraction=0.5)
    with pytest.raises(RuntimeError, match="max_bad_fraction=0.5"):
        for _ in range(4):
            next(it)


def test_eval_batches_skip_unreadable_images(tmp_path):
    write_tree(tmp_path, "val", {"a": 2, "b": 1}, bad={"a/x.jpg": b""})
    source = sources.FolderSource(str(tmp_path), "val", cache_dir=str(tmp_path / "c"))
    batches = list(pipeline.eval_batches(source, _folder_data(), 8))
    assert [v for _, v in batches] == [3]
    assert batches[0][0]["image"].shape == (8, 16, 16, 3)


_WORKER_SCRIPT = """
import os, sys, time
from absl import app

def main(argv):
    from ml_collections import ConfigDict
    from mim_jax.data import pipeline, sources
    data = ConfigDict(dict(image_size=8, channels=1, crop_scale=(0.5, 1.0),
                           crop_ratio=(0.75, 1.33), flip=True, randaugment="", mean=(0.5,),
                           read_threads=1, num_workers=1,
                           num_frames=0, num_mel_bins=0))
    source = sources.SyntheticSource(64, (8, 8, 1), 10, 0)
    it = iter(pipeline.train_dataset(source, data, 4, 0))
    next(it)
    print("ready", flush=True)
    time.sleep(600)

if __name__ == "__main__":
    app.run(main)
"""


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")
def test_worker_processes_die_with_a_killed_trainer(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_WORKER_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    try:
        assert proc.stdout.readline().strip() == b"ready"
        workers = [
            c
            for c in _children(proc.pid)
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()
        ]
        assert workers, "no grain worker process found"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [w for w in workers if Path(f"/proc/{w}").exists()]
    for w in alive:
        os.kill(w, signal.SIGKILL)
    assert not alive, "grain workers outlived the killed trainer"


def test_randaugment_spec_adds_a_seeded_per_image_augment_after_crop_and_flip():
    plain = iter(pipeline.train_dataset(_source(), DATA, 4, seed=3))
    data = ConfigDict({**DATA.to_dict(), "randaugment": "rand-m9-mstd0.5-inc1"})
    assert pipeline.train_transform(data).randaugment.num_ops == 2
    a = iter(pipeline.train_dataset(_source(), data, 4, seed=3))
    b = iter(pipeline.train_dataset(_source(), data, 4, seed=3))
    batches = [next(it)["image"] for it in (plain, a, b)]
    np.testing.assert_array_equal(batches[1], batches[2])
    assert not np.array_equal(batches[0], batches[1])


AUDIO_FT = ConfigDict(
    dict(num_frames=0, num_mel_bins=32, sample_rate=16000, target_length=24, gain_aug=True,
         time_roll=False, read_threads=2, num_workers=0, num_classes=3, mixup=1.0, freqm=8,
         timem=6, balanced_sampling=True, epoch_len=16)
)  # fmt: skip


def _audio_source(n=12):
    from mim_jax.data import audio_io

    return audio_io.SyntheticAudioSource(n, 24, 16000, 3, seed=0)


def test_audio_fine_tuning_batches_mix_mask_and_balance():
    it = iter(pipeline.train_dataset(_audio_source(), AUDIO_FT, 4, seed=0))
    batches = [next(it) for _ in range(6)]
    b = batches[0]
    assert b["image"].shape == (4, 24, 32, 1) and b["image"].dtype == np.float32
    assert b["labels"].shape == (4, 3) and b["labels"].dtype == np.float32
    assert b["label"].shape == (4,) and b["label"].dtype == np.int32
    for batch in batches:  # every clip mixed (mixup=1.0) with a single-label partner
        labels = batch["labels"]
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)
        assert (labels[np.arange(4), batch["label"]] > 0.15).all()
    images = np.concatenate([b["image"][..., 0] for b in batches])
    zero_cols = (images == 0).all(axis=1).any(axis=1)  # a masked frequency band
    zero_rows = (images == 0).all(axis=2).any(axis=1)  # a masked time band
    assert zero_cols.sum() >= 12 and zero_rows.sum() >= 12
    again = iter(pipeline.train_dataset(_audio_source(), AUDIO_FT, 4, seed=0))
    for want in batches:
        got = next(again)
        np.testing.assert_array_equal(got["image"], want["image"])
        np.testing.assert_array_equal(got["labels"], want["labels"])


def test_audio_fine_tuning_stream_restores_from_the_iterator_state():
    it = iter(pipeline.train_dataset(_audio_source(), AUDIO_FT, 4, seed=1))
    next(it)
    next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(5)]  # across the 16-draw epoch boundary
    fresh = iter(pipeline.train_dataset(_audio_source(), AUDIO_FT, 4, seed=1))
    fresh.set_state(state)
    for want in expected:
        got = next(fresh)
        np.testing.assert_array_equal(got["image"], want["image"])
        np.testing.assert_array_equal(got["labels"], want["labels"])


def test_balanced_sampling_draws_rare_classes_as_often_as_common_ones():
    images = np.random.default_rng(0).integers(0, 255, (20, 8, 8), dtype=np.uint8)
    source = sources.ArraySource(images, np.array([0] * 18 + [1] * 2))
    data = ConfigDict({**DATA.to_dict(), "balanced_sampling": True, "epoch_len": 0})
    it = iter(pipeline.train_dataset(source, data, 4, seed=0))
    labels = np.concatenate([next(it)["label"] for _ in range(150)])
    assert 0.42 < labels.mean() < 0.58  # class 1 holds 10% of the data, ~half the draws
    plain = iter(pipeline.train_dataset(source, DATA, 4, seed=0))
    assert np.concatenate([next(plain)["label"] for _ in range(150)]).mean() == 0.1


def test_examples_per_epoch_is_epoch_len_only_with_balanced_sampling():
    source = _source(20)
    cfg = lambda **kw: ConfigDict({**DATA.to_dict(), **kw})
    assert pipeline.examples_per_epoch(source, cfg(balanced_sampling=True, epoch_len=50)) == 50
    assert pipeline.examples_per_epoch(source, cfg(balanced_sampling=True, epoch_len=0)) == 20
    assert pipeline.examples_per_epoch(source, cfg(balanced_sampling=False, epoch_len=50)) == 20
    assert pipeline.examples_per_epoch(source, DATA) == 20  # configs without the keys


def test_audio_augmentation_settings_are_checked_before_anything_runs():
    from configs import audiomae_finetune, mae
    from mim_jax import config_lib

    for key, value, message in (
        ("mixup", 1.5, r"config.data.mixup must be in \[0, 1\]"),
        ("timem", -1, "config.data.timem must be >= 0"),
        ("epoch_len", -1, "config.data.epoch_len must be >= 0"),
    ):
        config = audiomae_finetune.get_config()
        config.data[key] = value
        with pytest.raises(ValueError, match=message):
            config_lib.validate(config, 1)
    config = mae.get_config()
    config.data.mixup = 0.5
    with pytest.raises(ValueError, match="config.data.num_mel_bins"):
        config_lib.validate(config, 1)
