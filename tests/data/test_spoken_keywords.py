import numpy as np
import pytest
import soundfile

from mim_jax.data import audio_io, sources, spoken_keywords


def test_train_and_test_voices_are_disjoint_and_every_word_is_spoken_alike():
    train, test = spoken_keywords.utterances("train"), spoken_keywords.utterances("test")
    assert len(train) == 2400 and len(test) == 480
    assert not {u[1] for u in train} & {u[1] for u in test}
    for split in (train, test):
        words = [u[0] for u in split]
        assert all(words.count(w) == len(split) // 10 for w in spoken_keywords.WORDS)


@pytest.fixture
def small_recipe(monkeypatch):
    monkeypatch.setattr(spoken_keywords, "WORDS", ("yes", "no"))
    monkeypatch.setattr(spoken_keywords, "ACCENTS", ("en-us",))
    monkeypatch.setattr(spoken_keywords, "VARIANTS", {"train": ("", "f1"), "test": ("m7",)})
    monkeypatch.setattr(spoken_keywords, "SPEEDS", (160,))


def test_generates_16khz_clips_once_and_reads_them_as_an_audio_folder(tmp_path, small_recipe):
    directory = spoken_keywords.generate(tmp_path, "train")
    files = sorted(directory.glob("*/*.wav"))
    assert [f.parent.name for f in files] == ["no", "no", "yes", "yes"]
    info = soundfile.info(files[0])
    assert info.samplerate == 16000 and info.duration >= spoken_keywords.CLIP_SECONDS - 0.01
    x = audio_io.read(files[0], 16000)
    assert np.abs(x).max() > 0.05  # speech, not just the noise floor
    stamp = (directory / "manifest.json").stat().st_mtime_ns
    assert spoken_keywords.generate(tmp_path, "train") == directory  # cached: not redone
    assert (directory / "manifest.json").stat().st_mtime_ns == stamp
    source = sources.FolderSource(
        str(tmp_path), "train", str(tmp_path / "c"), sources.AUDIO_EXTENSIONS
    )
    assert source.classes == ["no", "yes"] and len(source) == 4


def test_generation_is_deterministic(tmp_path, small_recipe):
    a = spoken_keywords.generate(tmp_path / "a", "test")
    b = spoken_keywords.generate(tmp_path / "b", "test")
    for f in sorted(a.glob("*/*.wav")):
        assert f.read_bytes() == (b / f.relative_to(a)).read_bytes()


def test_missing_espeak_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(spoken_keywords.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-get install espeak-ng"):
        spoken_keywords.generate(tmp_path, "train")
