"""Kaldi-compatible log-mel filterbank features in NumPy (Kaldi's `compute-fbank`).

Audio-MAE computes its input with `torchaudio.compliance.kaldi.fbank(waveform,
htk_compat=True, sample_frequency=sr, use_energy=False, window_type="hanning",
num_mel_bins=128, dither=0.0, frame_shift=10)` on a mean-subtracted waveform in [-1, 1]
(official `dataset.py`); these are that call's defaults here. Kaldi's steps per frame:
remove the DC offset, pre-emphasise (0.97, first sample against itself), window
(symmetric Hann), zero-pad to a power of two, power spectrum, triangular mel filters
(mel = 1127 ln(1 + f/700), 20 Hz to Nyquist, the Nyquist bin unused), log floored at
float32 epsilon. Frames are snipped to fit (Kaldi's `snip_edges=true`).
"""

import functools
import math

import numpy as np

# AudioSet log-mel statistics used by the official recipe (Audio-MAE `main_pretrain.py`).
AUDIOSET_MEAN = -4.2677393
AUDIOSET_STD = 4.5689974
_LOG_FLOOR = float(np.finfo(np.float32).eps)


def mel_scale(freq: np.ndarray | float) -> np.ndarray:
    """Hz -> mel, Kaldi's (HTK) natural-log formula."""
    return 1127.0 * np.log1p(np.asarray(freq, np.float64) / 700.0)


@functools.lru_cache(maxsize=16)
def mel_banks(
    num_bins: int, fft_size: int, sample_rate: float, low_freq: float, high_freq: float
) -> np.ndarray:
    """Kaldi's triangular mel filters [num_bins, fft_size // 2] (no Nyquist column):
    equally spaced in mel between low_freq and high_freq (<= 0: offset from Nyquist)."""
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not 0.0 <= low_freq < high_freq <= nyquist:
        raise ValueError(f"mel range [{low_freq}, {high_freq}] Hz is outside [0, {nyquist}]")
    mel_low, mel_high = mel_scale(low_freq), mel_scale(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = np.arange(num_bins, dtype=np.float64)[:, None]
    left, center, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
    mel = mel_scale(np.arange(fft_size // 2) * sample_rate / fft_size)[None, :]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    weights = np.where(mel <= center, up, down)
    return np.where((mel > left) & (mel < right), weights, 0.0)


def frame_count(num_samples: int, sample_rate: float, frame_length_ms: float = 25.0,
                frame_shift_ms: float = 10.0) -> int:  # fmt: skip
    """Frames Kaldi makes from `num_samples` with snip_edges (0 when shorter than one)."""
    size = int(sample_rate * frame_length_ms / 1000)
    shift = int(sample_rate * frame_shift_ms / 1000)
    return 0 if num_samples < size else 1 + (num_samples - size) // shift


def samples_for_frames(num_frames: int, sample_rate: float, frame_length_ms: float = 25.0,
                       frame_shift_ms: float = 10.0) -> int:  # fmt: skip
    """The fewest samples that give `num_frames` frames (the inverse of `frame_count`)."""
    size = int(sample_rate * frame_length_ms / 1000)
    shift = int(sample_rate * frame_shift_ms / 1000)
    return size + (num_frames - 1) * shift


def fbank(
    waveform: np.ndarray,
    sample_rate: float = 16000.0,
    num_mel_bins: int = 128,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    preemphasis: float = 0.97,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> np.ndarray:
    """Log-mel filterbank [num_frames, num_mel_bins] float32 of a mono waveform [N].

    Computed in float32, as torchaudio does (agrees with float64 to ~2e-4 in the log).
    """
    x = np.asarray(waveform, np.float32)
    if x.ndim != 1:
        raise ValueError(f"fbank expects a mono waveform [N], got shape {x.shape}")
    size = int(sample_rate * frame_length_ms / 1000)
    shift = int(sample_rate * frame_shift_ms / 1000)
    n = frame_count(len(x), sample_rate, frame_length_ms, frame_shift_ms)
    if n == 0:
        return np.zeros((0, num_mel_bins), np.float32)
    frames = np.lib.stride_tricks.as_strided(
        x, (n, size), (x.strides[0] * shift, x.strides[0]), writeable=False
    )
    frames = frames - frames.mean(axis=1, keepdims=True)  # remove_dc_offset (a copy)
    frames[:, 1:] -= preemphasis * frames[:, :-1].copy()
    frames[:, 0] *= 1.0 - preemphasis  # the first sample against itself
    frames *= _hann(size)
    fft_size = 1 << math.ceil(math.log2(size))  # round_to_power_of_two
    spectrum = np.fft.rfft(frames, n=fft_size)  # [n, fft_size // 2 + 1]
    power = spectrum.real**2 + spectrum.imag**2
    banks = mel_banks(num_mel_bins, fft_size, float(sample_rate), low_freq, high_freq)
    energies = power[:, : fft_size // 2] @ banks.T.astype(np.float32)
    return np.log(np.maximum(energies, _LOG_FLOOR)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _hann(size: int) -> np.ndarray:
    """Kaldi's "hanning" window: 0.5 - 0.5 cos(2 pi i / (N - 1)) (symmetric)."""
    return np.hanning(size).astype(np.float32)


def pad_or_crop(features: np.ndarray, target_length: int) -> np.ndarray:
    """[T, F] -> [target_length, F]: zeros appended at the end, or the first frames kept
    (official `dataset.py`)."""
    t = features.shape[0]
    if t >= target_length:
        return features[:target_length]
    return np.pad(features, ((0, target_length - t), (0, 0)))
