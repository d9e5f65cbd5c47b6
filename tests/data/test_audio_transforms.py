import io

import grain
import jax
import numpy as np
import pytest
import soundfile
from ml_collections import ConfigDict

from mim_jax import sharding
from mim_jax.data import audio_transforms, fbank, pipeline, sources
from tests.data.test_audio_io import tone

AUDIO = ConfigDict(
    dict(num_frames=0, num_mel_bins=64, sample_rate=16000, target_length=40, gain_aug=True,
         time_roll=False, read_threads=2, num_workers=0)
)  # fmt: skip


def _wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, samples, rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def test_example_is_the_padded_fbank_of_the_mean_removed_waveform():
    x = tone(0.2) + 0.1  # a DC offset, removed before the fbank
    out = audio_transforms.to_example(
        {"encoded": _wav(x), "label": 3, "path": "a.wav"}, 16000, 64, 40
    )
    assert out["image"].shape == (40, 64, 1) and out["image"].dtype == np.float32
    expected = fbank.fbank(x - x.mean(), num_mel_bins=64)  # 18 frames
    np.testing.assert_allclose(out["image"][:18, :, 0], expected, atol=1e-5)
    np.testing.assert_array_equal(out["image"][18:], 0.0)
    assert out["label"] == 3


def test_gain_augmentation_shifts_log_energies_by_twice_the_log_gain():
    element = {"audio": tone(0.5), "sample_rate": 16000, "label": 0}
    plain = audio_transforms.to_example(element, 16000, 64, 40)["image"]
    rng = np.random.default_rng(0)
    gain = np.random.default_rng(0).beta(10.0, 10.0) + 0.5
    aug = audio_transforms.to_example(element, 16000, 64, 40, rng, gain_aug=True)["image"]
    live = plain > -10  # above the log floor
    np.testing.assert_allclose((aug - plain)[live], 2 * np.log(gain), atol=1e-3)


def test_time_roll_shifts_the_waveform_circularly():
    x = np.zeros(16000, np.float32)
    x[:800] = tone(0.05)
    rng = np.random.default_rng(1)
    offset = np.random.default_rng(1).integers(16000)
    rolled = audio_transforms.augment(x, rng, gain=False, roll=True)
    np.testing.assert_array_equal(rolled, np.roll(x, offset))


def test_silent_empty_and_corrupt_audio_become_errors():
    for data in (_wav(np.zeros(8000, np.float32)), _wav(np.zeros(10, np.float32)), b"junk"):
        out = audio_transforms.to_example(
            {"encoded": data, "label": 0, "path": "x.wav"}, 16000, 64, 40
        )
        assert set(out) == {"error", "path"} and out["path"] == "x.wav"


def test_audio_folder_batches_skip_and_count_unusable_files(tmp_path):
    for label in ("a", "b"):
        (tmp_path / "train" / label).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "train" / label / f"{i}.wav").write_bytes(
                _wav(tone(0.3, freq=300 + 100 * i))
            )
    (tmp_path / "train" / "a" / "silent.wav").write_bytes(_wav(np.zeros(8000, np.float32)))
    (tmp_path / "train" / "b" / "broken.flac").write_bytes(b"fLaC but not really")
    source = sources.FolderSource(
        str(tmp_path), "train", str(tmp_path / "c"), sources.AUDIO_EXTENSIONS
    )
    assert len(source) == 8
    host = iter(pipeline.train_dataset(source, AUDIO, 6, seed=0))
    mesh = sharding.make_mesh(ConfigDict(dict(data=-1, fsdp=1)), jax.devices()[:1])
    it = pipeline.DevicePrefetcher(host, mesh, depth=1)
    batches = [next(it) for _ in range(4)]  # 6 good files per epoch
    assert all(b["image"].shape == (6, 40, 64, 1) for b in batches)
    assert all(b["image"].dtype == np.float32 for b in batches)
    assert 6 <= it.bad_examples <= 8  # 2 per epoch


def test_float_inputs_are_normalised_without_the_uint8_scale():
    x = np.full((1, 2, 2, 1), -4.0, np.float32)
    np.testing.assert_allclose(pipeline.normalize(x, (-5.0,), (2.0,)), 0.5)


def _multi_hot(ids, num_classes=5):
    out = np.zeros(num_classes, np.uint8)
    out[list(ids)] = 1
    return out


def test_mixup_mixes_the_augmented_waveforms_and_the_labels_by_lambda():
    w1, w2 = tone(0.3, freq=440) + 0.05, tone(0.2, freq=1250) - 0.1  # partner shorter
    partner = {"audio": w2, "sample_rate": 16000, "label": 3, "labels": _multi_hot([3, 4])}
    element = {"audio": w1, "sample_rate": 16000, "label": 1, "labels": _multi_hot([1, 3])}
    element[audio_transforms.PARTNER] = partner
    t = audio_transforms.AudioTrainTransform(16000, 64, 40, gain_aug=True, mix_labels=True)
    out = t.random_map(element, np.random.default_rng(7))
    draws = np.random.default_rng(7)  # gain of clip 1, gain of clip 2, lambda
    g1, g2, lam = draws.beta(10, 10) + 0.5, draws.beta(10, 10) + 0.5, draws.beta(10, 10)
    x1 = (w1 - w1.mean()) * np.float32(g1)
    x2 = np.zeros_like(x1)
    x2[: len(w2)] = (w2 - w2.mean()) * np.float32(g2)
    mix = lam * x1 + (1 - lam) * x2
    expected = audio_transforms.spectrogram(mix - mix.mean(), 16000, 64, 40)
    np.testing.assert_allclose(out["image"], expected, atol=1e-4)
    assert out["labels"].dtype == np.float32 and out["label"] == 1
    np.testing.assert_allclose(out["labels"], [0, lam, 0, 1, 1 - lam], rtol=1e-6)


def test_mixup_cuts_a_longer_partner_to_the_first_clip():
    w1 = tone(0.2, freq=440)
    w2 = np.concatenate([tone(0.2, freq=900), tone(0.3, freq=3000)])  # the tail is cut off
    element = {"audio": w1, "sample_rate": 16000, "label": 0}
    element[audio_transforms.PARTNER] = {"audio": w2, "sample_rate": 16000, "label": 2}
    t = audio_transforms.AudioTrainTransform(16000, 64, 40, num_classes=3, mix_labels=True)
    out = t.random_map(element, np.random.default_rng(3))
    lam = np.random.default_rng(3).beta(10, 10)  # no gain: lambda is the first draw
    mix = lam * (w1 - w1.mean()) + (1 - lam) * (w2 - w2.mean())[: len(w1)]
    expected = audio_transforms.spectrogram(mix - mix.mean(), 16000, 64, 40)
    np.testing.assert_allclose(out["image"], expected, atol=1e-4)
    np.testing.assert_allclose(out["labels"], [lam, 0, 1 - lam], rtol=1e-6)


def test_unmixed_clips_give_float_multi_hot_or_one_hot_labels():
    t = audio_transforms.AudioTrainTransform(16000, 64, 40, num_classes=4, mix_labels=True)
    rng = np.random.default_rng(0)
    single = {"audio": tone(0.2), "sample_rate": 16000, "label": 2}
    out = t.random_map(single, rng)
    np.testing.assert_array_equal(out["labels"], [0, 0, 1, 0])
    assert out["labels"].dtype == np.float32 and out["label"] == 2
    plain = audio_transforms.AudioTrainTransform(16000, 64, 40)  # mixup off
    assert "labels" not in plain.random_map(single, rng)
    multi = {**single, "label": 1, "labels": _multi_hot([1, 4])}
    out = plain.random_map(multi, rng)
    assert out["labels"].dtype == np.float32
    np.testing.assert_array_equal(out["labels"], [0, 1, 0, 0, 1])


def test_single_label_outside_num_classes_names_the_key():
    t = audio_transforms.AudioTrainTransform(16000, 64, 40, num_classes=2, mix_labels=True)
    with pytest.raises(ValueError, match="config.data.num_classes"):
        t.random_map(
            {"audio": tone(0.2), "sample_rate": 16000, "label": 5}, np.random.default_rng(0)
        )


def test_an_unusable_partner_leaves_the_clip_unmixed():
    element = {"audio": tone(0.3), "sample_rate": 16000, "label": 1}
    t = audio_transforms.AudioTrainTransform(16000, 64, 40, True, num_classes=3, mix_labels=True)
    plain = t.random_map(element, np.random.default_rng(5))
    for partner in (
        {"encoded": b"junk", "label": 0, "path": "bad.wav"},
        {"error": "gone", "path": "missing.wav"},
        {"audio": np.zeros(8000, np.float32), "sample_rate": 16000, "label": 0},  # silent
    ):
        out = t.random_map({**element, audio_transforms.PARTNER: partner}, np.random.default_rng(5))
        np.testing.assert_array_equal(out["image"], plain["image"])
        np.testing.assert_array_equal(out["labels"], [0, 1, 0])


def test_unreadable_main_audio_is_still_an_error_with_a_partner():
    partner = {"audio": tone(0.3), "sample_rate": 16000, "label": 0}
    element = {"encoded": b"junk", "label": 0, "path": "x.wav", audio_transforms.PARTNER: partner}
    t = audio_transforms.AudioTrainTransform(16000, 64, 40, num_classes=2, mix_labels=True)
    out = t.random_map(element, np.random.default_rng(0))
    assert set(out) == {"error", "path"} and out["path"] == "x.wav"


def _mask_band(u_width: float, u_start: float, param: int, size: int) -> tuple[int, int]:
    """torchaudio mask_along_axis: [int(start), int(start) + int(width)), clipped."""
    width = u_width * param
    start = int(u_start * (size - width))
    return max(start, 0), min(start + int(width), size)


def test_spec_augment_masks_one_frequency_band_then_one_time_band():
    spec = np.random.default_rng(0).normal(size=(50, 40, 1)).astype(np.float32) + 10.0
    nonempty = 0
    for seed in range(20):
        out = audio_transforms.spec_augment(spec, 12, 20, np.random.default_rng(seed))
        u = np.random.default_rng(seed).random(4)
        f0, f1 = _mask_band(u[0], u[1], 12, 40)
        t0, t1 = _mask_band(u[2], u[3], 20, 50)
        masked = np.zeros((50, 40, 1), bool)
        masked[:, f0:f1] = True
        masked[t0:t1] = True
        np.testing.assert_array_equal(out[masked], 0.0)
        np.testing.assert_array_equal(out[~masked], spec[~masked])
        assert f1 - f0 <= 12 and t1 - t0 <= 20
        nonempty += (f1 > f0) and (t1 > t0)
        same = audio_transforms.spec_augment(spec, 12, 20, np.random.default_rng(seed))
        np.testing.assert_array_equal(out, same)
    assert nonempty >= 15
    assert audio_transforms.spec_augment(spec, 0, 0, np.random.default_rng(0)) is spec


def test_spec_augment_zero_cells_form_one_contiguous_band_per_axis():
    spec = np.random.default_rng(1).normal(size=(30, 20, 1)).astype(np.float32) + 10.0
    for seed in range(30):
        freq = audio_transforms.mask_along_axis(spec, 15, 1, np.random.default_rng(seed))
        cols = np.flatnonzero((freq == 0).all(axis=(0, 2)))
        assert (freq == 0).sum() == len(cols) * 30  # whole columns only
        if len(cols):
            assert cols[-1] - cols[0] + 1 == len(cols) < 15
    # a mask parameter above the axis size (timem 192 on short clips) stays inside it
    for seed in range(30):
        rows = audio_transforms.mask_along_axis(spec, 100, 0, np.random.default_rng(seed))
        u = np.random.default_rng(seed).random(2)
        t0, t1 = _mask_band(u[0], u[1], 100, 30)
        np.testing.assert_array_equal(np.flatnonzero((rows == 0).all(axis=(1, 2))), range(t0, t1))


def test_mixup_partners_are_a_pure_function_of_seed_and_position():
    src = [{"audio": np.full(4, i, np.float32), "label": i} for i in range(10)]
    src.append({"error": "unreadable", "path": "x"})
    parent = grain.MapDataset.source(src).repeat(400)
    a = audio_transforms.MixupPartners(parent, src, 0.5, seed=3)
    b = audio_transforms.MixupPartners(parent, src, 0.5, seed=3)
    c = audio_transforms.MixupPartners(parent, src, 0.5, seed=4)
    ks = range(4000)
    partners = [a.partner_index(k) for k in ks]
    assert partners == [b.partner_index(k) for k in ks]
    assert partners != [c.partner_index(k) for k in ks]
    drawn = np.array([j for j in partners if j is not None])
    assert 0.45 < len(drawn) / len(ks) < 0.55
    assert np.bincount(drawn, minlength=11).min() > 100  # uniform over the whole source
    for k in (0, 1, 2, 3, 57, 3999):
        element, j = a[k], partners[k]
        if j is None or "error" in src[k % 11]:
            assert audio_transforms.PARTNER not in element
        else:
            assert element[audio_transforms.PARTNER] is src[j]
            assert element["label"] == src[k % 11]["label"]
    with pytest.raises(ValueError, match=r"config.data.mixup must be in \[0, 1\]"):
        audio_transforms.MixupPartners(parent, src, 1.5, seed=0)
