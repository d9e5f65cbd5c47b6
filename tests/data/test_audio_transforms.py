import io

import jax
import numpy as np
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
