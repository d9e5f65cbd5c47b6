import io
import json

import numpy as np
import pytest
import soundfile

from mim_jax.data import audio_io


def tone(seconds: float = 0.5, rate: int = 16000, freq: float = 440.0, channels: int = 1):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def encode(samples: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_16"), ("FLAC", None), ("OGG", "VORBIS")])
def test_decodes_wav_flac_ogg_to_mono_at_the_target_rate(fmt, subtype):
    data = encode(tone(0.5, 22050, channels=2), 22050, fmt, subtype)
    x = audio_io.decode(data, 16000, "clip")
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 8000) <= 2  # 0.5 s at 16 kHz
    spectrum = np.abs(np.fft.rfft(x[1000:7000]))
    assert abs(np.argmax(spectrum) * 16000 / 6000 - 440) < 5  # still a 440 Hz tone


def test_stereo_channels_are_averaged_and_int16_is_scaled():
    left = np.tile(np.array([16384, -16384], np.int16), 400)
    right = np.zeros(800, np.int16)
    x = audio_io.to_mono(np.stack([left, right], 1), 16000, 16000)
    np.testing.assert_allclose(x[:4], [0.25, -0.25, 0.25, -0.25])


@pytest.mark.parametrize(
    "samples, message",
    [(np.zeros(0, np.float32), "empty"), (np.zeros(300, np.float32), "empty"),
     (np.zeros(16000, np.float32), "silent"), (np.full(800, np.nan, np.float32), "non-finite")],
)  # fmt: skip
def test_unusable_audio_raises_audio_error(samples, message):
    with pytest.raises(audio_io.AudioError, match=message):
        audio_io.to_mono(samples, 16000, 16000, "f.wav")


def test_corrupt_bytes_raise_audio_error_naming_the_file():
    with pytest.raises(audio_io.AudioError, match="broken.wav: unreadable"):
        audio_io.decode(b"RIFF not really a wave file", 16000, "broken.wav")


def _write_list(tmp_path, kind: str) -> str:
    entries = [("a.wav", "/m/dog,/m/cat"), ("b.flac", "/m/cat")]
    for name, _ in entries:
        (tmp_path / name).write_bytes(
            encode(tone(), 16000, "FLAC" if name.endswith("flac") else "WAV")
        )
    if kind == "json":
        path = tmp_path / "train.json"
        path.write_text(json.dumps({"data": [{"wav": w, "labels": lab} for w, lab in entries]}))
    else:
        path = tmp_path / "train.csv"
        path.write_text("path,labels\n" + "".join(f'{w},"{lab}"\n' for w, lab in entries))
    (tmp_path / "classes.csv").write_text(
        "index,mid,display_name\n0,/m/bird,Bird\n1,/m/cat,Cat\n2,/m/dog,Dog\n"
    )
    return str(path)


@pytest.mark.parametrize("kind", ["json", "csv"])
def test_audio_list_reads_official_json_and_csv_with_multi_hot_labels(tmp_path, kind):
    src = audio_io.AudioListSource(
        _write_list(tmp_path, kind), str(tmp_path), str(tmp_path / "classes.csv")
    )
    assert len(src) == 2 and src.num_classes == 3
    first = src[0]
    assert first["labels"].tolist() == [0, 1, 1] and first["label"] == 2  # /m/dog listed first
    assert first["encoded"] == (tmp_path / "a.wav").read_bytes()
    assert src[1]["labels"].tolist() == [0, 1, 0]


def test_audio_list_without_class_csv_uses_the_sorted_labels(tmp_path):
    src = audio_io.AudioListSource(_write_list(tmp_path, "csv"), str(tmp_path))
    assert src.class_index == {"/m/cat": 0, "/m/dog": 1}


def test_audio_list_rejects_unknown_labels_and_keeps_missing_files_as_errors(tmp_path):
    path = _write_list(tmp_path, "csv")
    (tmp_path / "classes.csv").write_text("index,mid,display_name\n0,/m/cat,Cat\n")
    with pytest.raises(ValueError, match=r"\['/m/dog'\] not in"):
        audio_io.AudioListSource(path, str(tmp_path), str(tmp_path / "classes.csv"))
    (tmp_path / "a.wav").unlink()
    src = audio_io.AudioListSource(path, str(tmp_path))
    assert "error" in src[0] and src[0]["path"].endswith("a.wav")


def test_tfds_audio_source_reads_audio_rate_and_label(monkeypatch):
    import tensorflow_datasets as tfds

    class Feature:
        sample_rate = 8000

    class FakeSource:
        dataset_info = type("Info", (), {"features": {"audio": Feature(), "label": None}})

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"audio": np.full(800, 1000 * (i + 1), np.int16), "label": i}

    monkeypatch.setattr(tfds, "data_source", lambda name, split, data_dir: FakeSource())
    src = audio_io.TfdsAudioSource("speech_commands", "train")
    ex = src[2]
    assert len(src) == 3 and ex["sample_rate"] == 8000 and ex["label"] == 2
    x = audio_io.to_mono(ex["audio"], ex["sample_rate"], 16000)
    assert len(x) == 1600 and abs(float(x.mean()) - 3000 / 32768) < 1e-3


def test_tfds_audio_without_tensorflow_says_how_to_get_it(monkeypatch):
    import tensorflow_datasets as tfds

    def fail(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'tensorflow'")

    monkeypatch.setattr(tfds, "data_source", fail)
    with pytest.raises(ModuleNotFoundError, match="pip install tensorflow-cpu"):
        audio_io.TfdsAudioSource("speech_commands", "train")


def test_synthetic_audio_is_deterministic_and_long_enough():
    a = audio_io.SyntheticAudioSource(4, 100, 16000, 5, seed=1)
    b = audio_io.SyntheticAudioSource(4, 100, 16000, 5, seed=1)
    np.testing.assert_array_equal(a[3]["audio"], b[3]["audio"])
    from mim_jax.data import fbank

    assert fbank.frame_count(len(a[0]["audio"]), 16000) == 100


def test_build_resolves_lists_and_class_csv_under_root_and_train_fixes_the_classes(tmp_path):
    from ml_collections import ConfigDict

    from mim_jax.data import sources

    _write_list(tmp_path, "csv")
    (tmp_path / "eval.csv").write_text('path,labels\na.wav,"/m/dog"\n')
    data = ConfigDict(dict(name="audio_list", root=str(tmp_path), train_list="train.csv",
                           eval_list="eval.csv", class_csv=None, train_split="train",
                           eval_split="eval"))  # fmt: skip
    train, test = sources.build(data, "train", 0), sources.build(data, "eval", 0)
    assert train.class_index == test.class_index == {"/m/cat": 0, "/m/dog": 1}
    assert test[0]["labels"].tolist() == [0, 1]
    data.class_csv = "classes.csv"  # relative to root, like the lists
    assert sources.build(data, "eval", 0)[0]["labels"].tolist() == [0, 0, 1]
    data.class_csv = "missing.csv"
    with pytest.raises(FileNotFoundError, match="config.data.class_csv"):
        sources.build(data, "train", 0)


def test_malformed_json_list_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"data": [{"wav": "a.wav"}]}))
    with pytest.raises(ValueError, match="bad.json: expected"):
        audio_io.parse_list(path)


def test_a_constant_signal_counts_as_silent():
    with pytest.raises(audio_io.AudioError, match="silent"):
        audio_io.to_mono(np.full(8000, 0.3, np.float32), 16000, 16000)
