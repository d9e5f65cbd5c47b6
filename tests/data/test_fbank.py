"""Kaldi fbank against two independent implementations: torchaudio's (the official
Audio-MAE call, recorded in fixtures/kaldi_fbank.npz by make_fbank_fixture.py) and
kaldi-native-fbank (a C++ port of Kaldi's feature code)."""

from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np
import pytest

from mim_jax.data import fbank

FIXTURE = np.load(Path(__file__).parent / "fixtures" / "kaldi_fbank.npz")


def _speech() -> np.ndarray:
    return FIXTURE["speech_int16"] / 32768.0


def _noise() -> np.ndarray:  # as make_fbank_fixture.py draws it
    return np.random.default_rng(0).uniform(-1, 1, 16000).astype(np.float32)


def _official(x: np.ndarray) -> np.ndarray:
    return fbank.fbank(x - x.mean())  # dataset.py removes the mean before the fbank call


@pytest.mark.parametrize("name, waveform", [("speech", _speech), ("noise", _noise)])
def test_matches_torchaudio_kaldi_fbank_with_the_official_options(name, waveform):
    expected = FIXTURE[f"{name}_fbank"]
    got = _official(waveform().astype(np.float32))
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-3


def _knf(x: np.ndarray, num_bins: int, sample_rate: int = 16000) -> np.ndarray:
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = sample_rate
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = "hanning"
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = num_bins
    opts.use_energy = False
    computer = knf.OnlineFbank(opts)
    computer.accept_waveform(sample_rate, x.tolist())
    computer.input_finished()
    return np.stack([computer.get_frame(i) for i in range(computer.num_frames_ready)])


@pytest.mark.parametrize("num_bins", [23, 80])
@pytest.mark.parametrize("waveform", [_speech, _noise])
def test_matches_kaldi_native_fbank(num_bins, waveform):
    x = waveform().astype(np.float32)
    expected = _knf(x, num_bins)
    got = fbank.fbank(x, num_mel_bins=num_bins)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-3


def test_official_128_bins_leave_bin_3_empty_so_it_is_the_log_floor():
    # Kaldi itself refuses 128 bins at 16 kHz ("num-mel-bins too large"): no FFT bin
    # falls inside filter 3's triangle. torchaudio, and hence the official features,
    # keep it as log(float32 eps).
    banks = fbank.mel_banks(128, 512, 16000.0, 20.0, 0.0)
    assert np.flatnonzero(banks.sum(axis=1) == 0).tolist() == [3]
    feats = fbank.fbank(_noise())
    np.testing.assert_allclose(feats[:, 3], np.log(np.finfo(np.float32).eps))


def test_frame_count_snips_edges():
    assert fbank.frame_count(399, 16000) == 0
    assert fbank.frame_count(400, 16000) == 1
    assert fbank.frame_count(16000, 16000) == 98
    assert fbank.fbank(np.ones(300, np.float32)).shape == (0, 128)


def test_pad_or_crop_appends_zeros_or_keeps_the_first_frames():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    padded = fbank.pad_or_crop(x, 8)
    np.testing.assert_array_equal(padded[:6], x)
    np.testing.assert_array_equal(padded[6:], 0)
    np.testing.assert_array_equal(fbank.pad_or_crop(x, 4), x[:4])


def test_rejects_multichannel_input():
    with pytest.raises(ValueError, match="mono"):
        fbank.fbank(np.zeros((2, 16000), np.float32))


def test_samples_for_frames_is_the_inverse_of_frame_count():
    for n in (1, 2, 98, 1024):
        samples = fbank.samples_for_frames(n, 16000)
        assert fbank.frame_count(samples, 16000) == n
        assert fbank.frame_count(samples - 1, 16000) == n - 1
