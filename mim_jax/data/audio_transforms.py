"""Per-example audio transforms (grain maps): waveform -> log-mel spectrogram "image".

Follows the official Audio-MAE `dataset.py`: mono waveform at 16 kHz, mean removed,
optional augmentation, Kaldi fbank (128 bins, 25 ms Hann, 10 ms shift), zero-padded or
cut to `target_length` frames. The official `_roll_mag_aug` draws its roll offset from
`len()` of a [channels, samples] array, so on mono audio it never rolls and only the
gain Beta(10, 10) + 0.5 acts: `gain_aug` is that; `time_roll` is the circular shift
it meant (uniform over the clip), off in the official recipe. The output {"image":
float32 [T, F, 1]} holds raw log-mel values; the (x - mean) / std normalisation runs on
the device.
Unusable audio becomes {"error", "path"}, which the pipeline drops and counts.
"""

import dataclasses

import grain
import numpy as np

from mim_jax.data import audio_io, fbank


def waveform(element: dict, sample_rate: int) -> np.ndarray:
    """The element's mono float32 waveform at `sample_rate` (decoding file bytes)."""
    path = str(element.get("path", ""))
    if "encoded" in element:
        return audio_io.decode(element["encoded"], sample_rate, path)
    return audio_io.to_mono(element["audio"], int(element["sample_rate"]), sample_rate, path)


def augment(x: np.ndarray, rng: np.random.Generator, gain: bool, roll: bool) -> np.ndarray:
    """Optional circular time shift (uniform offset) then gain ~ Beta(10, 10) + 0.5."""
    if roll:
        x = np.roll(x, int(rng.integers(len(x))))
    if gain:
        x = x * np.float32(rng.beta(10.0, 10.0) + 0.5)
    return x.astype(np.float32)


def spectrogram(x: np.ndarray, sample_rate: int, num_mel_bins: int, target_length: int):
    """Mono waveform -> log-mel [target_length, num_mel_bins, 1] float32."""
    features = fbank.fbank(x, sample_rate=sample_rate, num_mel_bins=num_mel_bins)
    return fbank.pad_or_crop(features, target_length)[..., None]


def to_example(
    element: dict,
    sample_rate: int,
    num_mel_bins: int,
    target_length: int,
    rng: np.random.Generator | None = None,
    gain_aug: bool = False,
    time_roll: bool = False,
) -> dict:
    """A source element -> {"image": log-mel [T, F, 1], "label"[, "labels"]}, or
    {"error", "path"} for unusable audio. With `rng`, the chosen augmentations."""
    if "error" in element:
        return element
    try:
        x = waveform(element, sample_rate)
    except audio_io.AudioError as e:
        return {"error": str(e), "path": str(element.get("path", "?"))}
    x = x - x.mean()
    if rng is not None:
        x = augment(x, rng, gain_aug, time_roll)
    out = {
        "image": spectrogram(x, sample_rate, num_mel_bins, target_length),
        "label": np.int32(element["label"]),
    }
    if "labels" in element:
        out["labels"] = element["labels"]
    return out


@dataclasses.dataclass
class AudioTrainTransform(grain.transforms.RandomMap):
    sample_rate: int = 16000
    num_mel_bins: int = 128
    target_length: int = 1024
    gain_aug: bool = False
    time_roll: bool = False

    def random_map(self, element: dict, rng: np.random.Generator) -> dict:
        return to_example(
            element,
            self.sample_rate,
            self.num_mel_bins,
            self.target_length,
            rng,
            self.gain_aug,
            self.time_roll,
        )


@dataclasses.dataclass
class AudioEvalTransform(grain.transforms.Map):
    sample_rate: int = 16000
    num_mel_bins: int = 128
    target_length: int = 1024

    def map(self, element: dict) -> dict:
        return to_example(element, self.sample_rate, self.num_mel_bins, self.target_length)
