"""Audio files -> mono float32 waveforms at one sample rate, and the audio sources.

Decoding is libsndfile through `soundfile` (wav, flac, ogg/vorbis, opus, mp3, aiff);
resampling is `soxr` (high quality). Channels are averaged to mono (the official loader
takes the first channel; AudioSet's clips are mono or near-identical stereo). A file that cannot be
decoded, is shorter than one 25 ms analysis frame, or is silent raises `AudioError`,
which the transforms turn into a skipped-and-counted element.

Sources (elements are {"encoded": bytes, "label", "path"} or decoded {"audio",
"sample_rate", "label"}; multi-label lists add "labels", a multi-hot uint8 [C]):
audio_folder: `root/<split>/<class>/<audio file>` (sources.FolderSource).
audio_list:   AudioSet-style lists: the official Audio-MAE json ({"data": [{"wav",
              "labels"}]}) or a csv with `path` and `labels` columns; labels are
              comma-separated ids mapped by a class csv (`index,mid,display_name`).
tfds_audio:   a TFDS audio dataset through `tfds.data_source`.
"""

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import soundfile
import soxr

from mim_jax.data import fbank

SILENCE_PEAK = 1.0 / 32768  # below one 16-bit step: treated as silent
MIN_SECONDS = 0.025  # one analysis frame


class AudioError(ValueError):
    """An audio file that cannot be used (unreadable, empty or silent)."""


def to_mono(waveform: np.ndarray, sample_rate: int, target_rate: int, path: str = "") -> np.ndarray:
    """[N] or [N, C] samples at `sample_rate` -> mono float32 [M] at `target_rate`,
    raising AudioError when empty or silent."""
    x = np.asarray(waveform)
    if x.dtype == np.uint8:  # 8-bit PCM is offset binary
        x = (x.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(x.dtype, np.integer):  # PCM integers -> [-1, 1]
        x = x / float(np.iinfo(x.dtype).max + 1)
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1:
        raise AudioError(f"{path}: expected samples [N] or [N, channels], got shape {x.shape}")
    if sample_rate != target_rate and len(x):
        x = soxr.resample(x, sample_rate, target_rate).astype(np.float32)
    if len(x) < MIN_SECONDS * target_rate:
        raise AudioError(f"{path}: empty or shorter than {MIN_SECONDS * 1000:.0f} ms")
    if not np.isfinite(x).all():
        raise AudioError(f"{path}: non-finite samples")
    if np.abs(x - x.mean()).max() < SILENCE_PEAK:  # a constant (DC) signal is silent too
        raise AudioError(f"{path}: silent")
    return x


def decode(data: bytes, target_rate: int, path: str = "") -> np.ndarray:
    """Encoded audio bytes -> mono float32 [N] at `target_rate`."""
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(f"{path}: unreadable audio ({e})") from e
    return to_mono(samples, rate, target_rate, path)


def read(path: str | os.PathLike, target_rate: int) -> np.ndarray:
    """An audio file -> mono float32 [N] at `target_rate`."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise AudioError(f"{path}: {e}") from e
    return decode(data, target_rate, str(path))


def read_class_csv(path: str | os.PathLike) -> dict[str, int]:
    """AudioSet's `class_labels_indices.csv` (index,mid,display_name) -> {mid or name: index}."""
    mapping = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if not {"index", "mid"} <= set(row):
                raise ValueError(f"{path}: expected columns index,mid[,display_name]")
            mapping[row["mid"]] = int(row["index"])
            if row.get("display_name"):
                mapping.setdefault(row["display_name"], int(row["index"]))
    return mapping


def parse_list(path: str | os.PathLike) -> list[tuple[str, list[str]]]:
    """(file, label ids) pairs of an official json datafile or a `path,labels` csv."""
    path = Path(path)
    if path.suffix == ".json":
        entries = json.loads(path.read_text())
        if not isinstance(entries, dict) or not all(
            isinstance(e, dict) and {"wav", "labels"} <= set(e) for e in entries.get("data", [None])
        ):
            raise ValueError(f'{path}: expected {{"data": [{{"wav": ..., "labels": ...}}, ...]}}')
        rows = [(e["wav"], e["labels"]) for e in entries["data"]]
    else:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if not {"path", "labels"} <= set(reader.fieldnames or ()):
                raise ValueError(f"{path}: expected a header with `path` and `labels` columns")
            rows = [(r["path"], r["labels"]) for r in reader]
    return [(file, [x.strip() for x in labels.split(",") if x.strip()]) for file, labels in rows]


class AudioListSource:
    """A multi-label list of audio files (AudioSet style) as {"encoded", "label",
    "labels", "path"}: "labels" multi-hot over the classes, "label" the first listed.

    Classes come from `class_csv`, else from every label in `classes_from` (the train
    list, so that train and eval agree; default: this list), sorted."""

    def __init__(
        self,
        list_file: str,
        root: str | None = None,
        class_csv: str | None = None,
        classes_from: str | None = None,
    ):
        entries = parse_list(list_file)
        if not entries:
            raise ValueError(f"{list_file}: no entries")
        if class_csv:
            self.class_index = read_class_csv(class_csv)
        else:
            seen = parse_list(classes_from) if classes_from else entries
            names = sorted({label for _, labels in seen for label in labels})
            self.class_index = {name: i for i, name in enumerate(names)}
        self.num_classes = max(self.class_index.values()) + 1
        self.root = Path(root) if root else None
        self.paths, self.label_ids = [], []
        for file, labels in entries:
            unknown = [x for x in labels if x not in self.class_index]
            if unknown:
                known = class_csv or classes_from or list_file
                raise ValueError(f"{list_file}: {file} has labels {unknown} not in {known}")
            if not labels:
                raise ValueError(f"{list_file}: {file} has no labels")
            self.paths.append(file)
            self.label_ids.append([self.class_index[x] for x in labels])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        if self.root is not None and not os.path.isabs(path):
            path = str(self.root / path)
        ids = self.label_ids[index]
        labels = np.zeros(self.num_classes, np.uint8)
        labels[ids] = 1
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            return {"error": str(e), "path": path}
        return {"encoded": data, "label": np.int32(ids[0]), "labels": labels, "path": path}


class TfdsAudioSource:
    """A TFDS audio dataset split through `tfds.data_source` as {"audio", "sample_rate",
    "label"}. TFDS's Audio feature imports TensorFlow, so these datasets need it."""

    def __init__(
        self,
        name: str,
        split: str,
        data_dir: str | None = None,
        audio_key: str = "audio",
        label_key: str = "label",
    ):
        import tensorflow_datasets as tfds  # heavy import, only when used

        try:
            self._source = tfds.data_source(name, split=split, data_dir=data_dir)
        except ModuleNotFoundError as e:
            raise ModuleNotFoundError(
                f"config.data.tfds_name={name!r}: TFDS audio features need TensorFlow "
                f"(pip install tensorflow-cpu); TFDS said: {e}"
            ) from e
        features = self._source.dataset_info.features
        if audio_key not in features or label_key not in features:
            raise ValueError(f"TFDS {name!r} has features {sorted(features)}; expected "
                             f"{audio_key!r} and {label_key!r}")  # fmt: skip
        self.sample_rate = int(features[audio_key].sample_rate)
        self.audio_key, self.label_key = audio_key, label_key

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        ex = self._source[index]
        return {
            "audio": np.asarray(ex[self.audio_key]),
            "sample_rate": np.int32(self.sample_rate),
            "label": np.int32(ex[self.label_key]),
        }


class SyntheticAudioSource:
    """Uniform-noise waveforms long enough for `num_frames` frames, and labels; element i
    is a pure function of (seed, i)."""

    def __init__(
        self, num_examples: int, num_frames: int, sample_rate: int, num_classes: int, seed: int
    ):
        self.num_examples, self.sample_rate = num_examples, sample_rate
        self.num_samples = fbank.samples_for_frames(num_frames, sample_rate)
        self.num_classes, self.seed = num_classes, seed

    def __len__(self) -> int:
        return self.num_examples

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, int(index)))
        audio = rng.uniform(-0.5, 0.5, self.num_samples).astype(np.float32)
        label = np.int32(rng.integers(self.num_classes))
        return {"audio": audio, "sample_rate": np.int32(self.sample_rate), "label": label}
