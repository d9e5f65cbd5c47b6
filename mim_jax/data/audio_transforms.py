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

Fine-tuning adds the official training-only augmentations: waveform mixup with a partner
clip that `MixupPartners` attaches upstream (soft "labels" float32 [C]), then one
SpecAugment frequency and one time mask on the raw log-mel (0.0 there, as the official
masks run before normalisation).
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


PARTNER = "partner"  # the raw source element a training clip is mixed with
MIX_BETA = 10.0  # lambda ~ Beta(10, 10) (dataset.py L205)
_MIXUP_STREAM = 0x6D6978  # keeps the mixup draws apart from other (seed, k) streams


class MixupPartners(grain.MapDataset):
    """Attaches to element k of the training stream, with probability `prob`, a uniformly
    drawn element of `source` under PARTNER (the official partner choice, not weighted).

    The draws come from a generator seeded by (seed, k), so they are a pure function of
    the global stream position and restore with the grain iterator state.
    """

    def __init__(self, parent: grain.MapDataset, source, prob: float, seed: int):
        super().__init__(parent)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"config.data.mixup must be in [0, 1], got {prob}")
        self._source, self._prob, self._seed = source, float(prob), int(seed)

    def __len__(self) -> int:
        return len(self._parent)

    def partner_index(self, k: int) -> int | None:
        """The source index element k is mixed with, or None when it is not mixed."""
        # dataset.py L252, L258: random.random() < mixup; random.randint(0, N - 1)
        rng = np.random.default_rng([self._seed, _MIXUP_STREAM, int(k)])
        if rng.random() >= self._prob:
            return None
        return int(rng.integers(len(self._source)))

    def __getitem__(self, k):
        if isinstance(k, slice):
            return self.slice(k)
        element = self._parent[k]
        j = self.partner_index(k)
        if j is None or "error" in element:
            return element
        return {**element, PARTNER: self._source[j]}

    def __str__(self) -> str:
        return f"MixupPartners(prob={self._prob}, seed={self._seed})"


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """[N] -> [length]: zero-padded at the end or cut (the partner, dataset.py L194-202)."""
    if len(x) >= length:
        return x[:length]
    return np.pad(x, (0, length - len(x)))


def mix_waveforms(x1: np.ndarray, x2: np.ndarray, lam: float) -> np.ndarray:
    """lam * x1 + (1 - lam) * x2 (x2 fitted to x1's length), mean removed: [N1] float32."""
    mix = lam * x1 + (1.0 - lam) * fit_length(x2, len(x1))  # dataset.py L207-208
    return (mix - mix.mean()).astype(np.float32)


def label_vector(element: dict, num_classes: int) -> np.ndarray:
    """The element's targets as float32 [C]: its multi-hot "labels", else a one-hot of
    "label" over `num_classes` (single-label sources)."""
    if "labels" in element:
        return np.asarray(element["labels"], np.float32)
    label = int(element["label"])
    if not 0 <= label < num_classes:
        raise ValueError(f"label {label} is outside [0, config.data.num_classes={num_classes})")
    out = np.zeros(num_classes, np.float32)
    out[label] = 1.0
    return out


def mix_label_vectors(labels1: np.ndarray, labels2: np.ndarray, lam: float) -> np.ndarray:
    """lam * labels1 + (1 - lam) * labels2, float32 [C]: += lam at each class of clip 1 and
    += 1 - lam at each of clip 2, a shared class ending at 1 (dataset.py L267-273)."""
    if labels1.shape != labels2.shape:
        raise ValueError(f"mixup partner labels {labels2.shape} differ from {labels1.shape}")
    return (lam * labels1 + (1.0 - lam) * labels2).astype(np.float32)


def mask_along_axis(
    spec: np.ndarray, param: int, axis: int, rng: np.random.Generator
) -> np.ndarray:
    """torchaudio `mask_along_axis` (p=1): width = rand * param, start = int(rand * (size -
    width)); cells [int(start), int(start) + int(width)) along `axis` set to 0.0."""
    if param < 1:
        return spec
    size = spec.shape[axis]
    width = rng.random() * param
    start = int(rng.random() * (size - width))  # truncates toward 0, as torch .long()
    index = np.arange(size)
    band = (index >= start) & (index < start + int(width))
    shape = [1] * spec.ndim
    shape[axis] = size
    return np.where(band.reshape(shape), np.float32(0.0), spec)


def spec_augment(spec: np.ndarray, freqm: int, timem: int, rng: np.random.Generator) -> np.ndarray:
    """One frequency mask of up to `freqm` bins, then one time mask of up to `timem`
    frames, on a raw log-mel [T, F, 1] (dataset.py L292-299; 0 = off)."""
    spec = mask_along_axis(spec, freqm, 1, rng)
    return mask_along_axis(spec, timem, 0, rng)


def _error(element: dict, e: Exception | str) -> dict:
    return {"error": str(e), "path": str(element.get("path", "?"))}


def _partner_waveform(element: dict, sample_rate: int) -> np.ndarray | None:
    """The partner's mean-removed waveform, or None when unusable (the clip is not mixed)."""
    partner = element.get(PARTNER)
    if partner is None or "error" in partner:
        return None
    try:
        x = waveform(partner, sample_rate)
    except audio_io.AudioError:
        return None
    return x - x.mean()


@dataclasses.dataclass
class AudioTrainTransform(grain.transforms.RandomMap):
    """Training clips: gain/roll, optional waveform mixup with the attached PARTNER,
    fbank, SpecAugment -> {"image" [T, F, 1], "label"[, "labels" float32 [C]]}.

    "labels" (BCE targets) are emitted when `mix_labels` (mixup on) or the source is
    multi-label; single-label sources use a one-hot over `num_classes`.
    """

    sample_rate: int = 16000
    num_mel_bins: int = 128
    target_length: int = 1024
    gain_aug: bool = False
    time_roll: bool = False
    num_classes: int = 0
    mix_labels: bool = False
    freqm: int = 0
    timem: int = 0

    def random_map(self, element: dict, rng: np.random.Generator) -> dict:
        if "error" in element:
            return _error(element, element["error"])
        try:
            x = waveform(element, self.sample_rate)
        except audio_io.AudioError as e:
            return _error(element, e)
        x = augment(x - x.mean(), rng, self.gain_aug, self.time_roll)
        labels = None
        if self.mix_labels or "labels" in element or PARTNER in element:
            labels = label_vector(element, self.num_classes)
            x, labels = self._mix(x, labels, element, rng)
        image = spectrogram(x, self.sample_rate, self.num_mel_bins, self.target_length)
        out = {
            "image": spec_augment(image, self.freqm, self.timem, rng),
            "label": np.int32(element["label"]),
        }
        if labels is not None:
            out["labels"] = labels
        return out

    def _mix(
        self, x: np.ndarray, labels: np.ndarray, element: dict, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """(waveform [N], labels [C]) mixed with the attached partner; unchanged without
        one or when its audio is unusable."""
        partner = _partner_waveform(element, self.sample_rate)
        if partner is None:
            return x, labels
        # dataset.py L187-192: each wave mean-removed and augmented, then mixed
        partner = augment(partner, rng, self.gain_aug, self.time_roll)
        lam = float(rng.beta(MIX_BETA, MIX_BETA))
        partner_labels = label_vector(element[PARTNER], len(labels))
        return mix_waveforms(x, partner, lam), mix_label_vectors(labels, partner_labels, lam)


@dataclasses.dataclass
class AudioEvalTransform(grain.transforms.Map):
    sample_rate: int = 16000
    num_mel_bins: int = 128
    target_length: int = 1024

    def map(self, element: dict) -> dict:
        return to_example(element, self.sample_rate, self.num_mel_bins, self.target_length)
