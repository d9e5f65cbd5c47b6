"""Random-access sources yielding {"image": uint8 [H, W, C], "label": int}.

fashion_mnist: the embedded default, read from the Debian package `dataset-fashion-mnist`
  (IDX files in /usr/share/datasets/fashion-mnist), else TFDS `fashion_mnist`.
synthetic:     deterministic random images of any shape, no I/O.
tfds:          any TFDS image dataset through `tfds.data_source` (ArrayRecord, no TensorFlow).
folder:        `root/<split>/<class>/<image>` (ImageNet as usually unpacked), with a cached
               file index; yields encoded bytes, decoded by the transforms.
array_record:  ArrayRecord shards written by `python -m mim_jax.data.convert`.

Videos (for methods taking clips; decoded by mim_jax.data.video_transforms):
moving_fashion_mnist: the embedded default, generated from Fashion-MNIST (moving_fmnist).
video_list:    the official `path label` / `path num_frames label` lists (video_io).
video_folder:  `root/<split>/<class>/<video file or frame folder>` (video_io).
video_array_record: pre-sampled JPEG clips from `python -m mim_jax.data.convert_video`.

Audio (for methods taking spectrograms; decoded by mim_jax.data.audio_transforms):
spoken_keywords: the embedded default, synthesised with espeak-ng (spoken_keywords).
audio_folder:  `root/<split>/<class>/<audio file>`.
audio_list:    AudioSet-style json/csv lists, multi-label (audio_io).
tfds_audio:    a TFDS audio dataset through `tfds.data_source` (audio_io).
"""

import gzip
import hashlib
import json
import os
import struct
from pathlib import Path

import grain
import ml_collections
import msgpack
import numpy as np
from absl import logging

from mim_jax.config_lib import DATA_SOURCES

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FMNIST_HELP = (
    "Fashion-MNIST not found. Install the Debian package: "
    "`sudo apt-get install dataset-fashion-mnist` (IDX files in {dir}), or point "
    "--config.data.root at a directory holding {files}, or let TFDS download it "
    "(needs internet). TFDS said: {tfds_error}"
)


class ArraySource:
    """In-memory arrays as a grain random-access source."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        if images.ndim == 3:
            images = images[..., None]  # [N, H, W] -> [N, H, W, 1]
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels.astype(np.int32)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "label": self.labels[index]}


class SyntheticSource:
    """Random uint8 images [H, W, C] (or videos [T, H, W, C] under key "video") and labels;
    element i is a pure function of (seed, i)."""

    def __init__(
        self,
        num_examples: int,
        shape: tuple[int, ...],
        num_classes: int,
        seed: int,
        key: str = "image",
    ):
        self.num_examples, self.shape = num_examples, tuple(shape)
        self.num_classes, self.seed, self.key = num_classes, seed, key

    def __len__(self) -> int:
        return self.num_examples

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, int(index)))
        image = rng.integers(0, 256, self.shape, dtype=np.uint8)
        return {self.key: image, "label": np.int32(rng.integers(self.num_classes))}


class TfdsSource:
    """A TFDS dataset split read through `tfds.data_source`, reduced to image and label."""

    def __init__(self, name: str, split: str, data_dir: str | None = None, download: bool = False):
        import tensorflow_datasets as tfds  # heavy import, only when used

        self.name, self.split = name, split
        self._source = tfds.data_source(name, split=split, data_dir=data_dir, download=download)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        ex = self._source[index]
        image = np.asarray(ex["image"])
        return {"image": image if image.ndim == 3 else image[..., None], "label": ex["label"]}


IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"
)  # fmt: skip
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif")
DEFAULT_INDEX_CACHE = Path("~/.cache/mim_jax/folder_index")


def _class_dirs(directory: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(directory) if e.is_dir() and e.name[0] != ".")


def list_class_files(
    directory: str | os.PathLike, extensions: tuple[str, ...] = IMAGE_EXTENSIONS
) -> tuple[list[str], list[str], list[int]]:
    """(classes, relative paths, labels) of `directory/<class>/**/<file>` with one of
    `extensions`; classes are the sorted subdirectory names and labels their indices
    (torchvision ImageFolder)."""
    directory = Path(directory)
    classes = _class_dirs(directory)
    paths, labels = [], []
    for label, name in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(directory / name, followlinks=True):
            dirnames.sort()
            rel = os.path.relpath(dirpath, directory)
            for f in sorted(filenames):
                if f.lower().endswith(extensions):
                    paths.append(os.path.join(rel, f))
                    labels.append(label)
    return classes, paths, labels


def folder_index(
    directory: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
) -> tuple[list[str], list[str], list[int]]:
    """`list_class_files(directory, extensions)`, cached in `cache_dir` (default
    ~/.cache/mim_jax/...) so a million-file tree is listed once. The cache is keyed by
    the directory's absolute path (and the extensions) and is re-listed when any class
    directory's modification time changes (files added or removed there)."""
    directory = Path(directory).absolute()
    if not directory.is_dir():
        raise FileNotFoundError(f"config.data.root: no directory {directory}")
    classes = _class_dirs(directory)
    if not classes:
        raise FileNotFoundError(
            f"No class subdirectories in {directory} (expected {directory}/<class>/<file>)"
        )
    signature = {c: os.stat(directory / c).st_mtime_ns for c in classes}
    cache = Path(cache_dir or DEFAULT_INDEX_CACHE).expanduser()
    key = str(directory) if extensions == IMAGE_EXTENSIONS else f"{directory}|{extensions}"
    cache_file = cache / (hashlib.sha1(key.encode()).hexdigest()[:16] + ".json")
    if cache_file.exists():
        try:
            cached = json.loads(cache_file.read_text())
            if cached["directory"] == str(directory) and cached["signature"] == signature:
                return cached["classes"], cached["paths"], cached["labels"]
        except (ValueError, KeyError):
            pass  # an unreadable cache is rebuilt
    classes, paths, labels = list_class_files(directory, extensions)
    if not paths:
        raise FileNotFoundError(f"No files ({', '.join(extensions)}) under {directory}/<class>/")
    try:
        cache.mkdir(parents=True, exist_ok=True)
        entry = dict(directory=str(directory), signature=signature, classes=classes)
        tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({**entry, "paths": paths, "labels": labels}))
        tmp.replace(cache_file)
    except OSError as e:  # a read-only home: list again next time
        logging.warning("Could not cache the file index of %s in %s: %s", directory, cache, e)
    logging.info("Indexed %d files in %d classes under %s", len(paths), len(classes), directory)
    return classes, paths, labels


class FolderSource:
    """`root/<split>/<class>/<file>` files (images, or audio with AUDIO_EXTENSIONS) as
    {"encoded": bytes, "label", "path"}."""

    def __init__(
        self,
        root: str,
        split: str,
        cache_dir: str | None = None,
        extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
    ):
        self.directory = Path(root).absolute() / split
        if not self.directory.is_dir():
            raise FileNotFoundError(
                f"config.data.root={root!r} has no {split!r} directory ({self.directory}); "
                "expected <root>/<split>/<class>/<file>"
            )
        self.classes, self.paths, labels = folder_index(self.directory, cache_dir, extensions)
        self.labels = np.asarray(labels, np.int32)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.directory / self.paths[index]
        try:
            data = path.read_bytes()
        except OSError as e:  # deleted or unreadable since indexing: skipped downstream
            return {"error": str(e), "path": str(path)}
        return {"encoded": data, "label": self.labels[index], "path": str(path)}


def pack_record(encoded: bytes, label: int, path: str) -> bytes:
    """One ArrayRecord record: msgpack {"encoded", "label", "path"}."""
    return msgpack.packb({"encoded": encoded, "label": int(label), "path": path})


def array_record_files(
    root: str | os.PathLike, split: str, writer: str = "mim_jax.data.convert --src=FOLDER"
) -> list[str]:
    """The shard files of `split` listed in `root/dataset_info.json` (written by `writer`)."""
    info_path = Path(root) / "dataset_info.json"
    if not info_path.exists():
        raise FileNotFoundError(
            f"config.data.root={str(root)!r}: no dataset_info.json (write one with "
            f"`python -m {writer} --dst=DIR`)"
        )
    splits = json.loads(info_path.read_text())["splits"]
    if split not in splits:
        raise ValueError(f"{info_path}: no split {split!r}; it has {sorted(splits)}")
    return [str(Path(root) / f) for f in splits[split]["files"]]


class ArrayRecordSource:
    """ArrayRecord shards of msgpack records {FIELD, "label", "path"}, random access:
    images from mim_jax.data.convert (`pack_record`, FIELD "encoded")."""

    FIELD = "encoded"
    WRITER = "mim_jax.data.convert --src=FOLDER"

    def __init__(self, root: str, split: str):
        self.files = array_record_files(root, split, self.WRITER)
        self._source = grain.sources.ArrayRecordDataSource(self.files)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        record = msgpack.unpackb(self._source[index])
        return {
            self.FIELD: record[self.FIELD],
            "label": np.int32(record["label"]),
            "path": record["path"],
        }


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file (optionally gzipped), the MNIST family's format."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    body = data[4 + 4 * ndim :]
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(body) != expected:
        raise ValueError(f"{path}: IDX header says {dims} ({expected} bytes), found {len(body)}")
    return np.frombuffer(body, dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def fashion_mnist_from_idx(directory: str | os.PathLike, split: str) -> ArraySource | None:
    """The split from IDX files in `directory`, or None when they are not there."""
    if split not in _FMNIST_FILES:
        raise ValueError(f"Fashion-MNIST split {split!r}; valid: {sorted(_FMNIST_FILES)}")
    paths = [_find(Path(directory), stem) for stem in _FMNIST_FILES[split]]
    if None in paths:
        return None
    return ArraySource(read_idx(paths[0]), read_idx(paths[1]))


def fashion_mnist(split: str, root: str | None = None) -> ArraySource:
    """Fashion-MNIST from `root` or the Debian package; else TFDS; else a clear error."""
    directory = root or FASHION_MNIST_DIR
    source = fashion_mnist_from_idx(directory, split)
    if source is not None:
        return source
    if root:
        raise FileNotFoundError(
            f"config.data.root={root!r} holds no Fashion-MNIST {split} IDX files "
            f"({', '.join(s + '[.gz]' for s in _FMNIST_FILES[split])})"
        )
    logging.warning("No Fashion-MNIST in %s; trying TFDS fashion_mnist.", directory)
    try:
        tfds_source = TfdsSource("fashion_mnist", split, download=True)
        items = [tfds_source[i] for i in range(len(tfds_source))]
    except Exception as e:  # any TFDS failure ends in the same advice
        files = ", ".join(s + ".gz" for pair in _FMNIST_FILES.values() for s in pair)
        raise FileNotFoundError(
            FMNIST_HELP.format(dir=FASHION_MNIST_DIR, files=files, tfds_error=e)
        ) from e
    return ArraySource(np.stack([x["image"] for x in items]), np.array([x["label"] for x in items]))


def build(data: ml_collections.ConfigDict, split: str, seed: int):
    """The source for `config.data` and a split name."""
    if data.name == "fashion_mnist":
        return fashion_mnist(split, data.root)
    if data.name == "synthetic":
        # Train and eval splits differ through the seed.
        shape = (data.image_size, data.image_size, data.channels)
        split_seed = seed if split == data.train_split else seed + 1
        if data.num_mel_bins:
            from mim_jax.data import audio_io

            return audio_io.SyntheticAudioSource(
                data.synthetic_examples,
                data.target_length,
                data.sample_rate,
                data.num_classes,
                split_seed,
            )
        if data.num_frames:  # videos of twice the clip length, so clips start anywhere
            shape = (2 * data.num_frames, *shape)
            return SyntheticSource(
                data.synthetic_examples, shape, data.num_classes, split_seed, key="video"
            )
        return SyntheticSource(data.synthetic_examples, shape, data.num_classes, split_seed)
    if data.name == "tfds":
        return TfdsSource(data.tfds_name, split, data.tfds_data_dir)
    if data.name == "folder":
        return FolderSource(data.root, split, data.index_cache_dir)
    if data.name == "array_record":
        return ArrayRecordSource(data.root, split)
    if data.name == "moving_fashion_mnist":
        from mim_jax.data import moving_fmnist

        return moving_fmnist.moving_fashion_mnist(
            split, data.root, data.video_frames, data.image_size
        )
    if data.name == "video_list":
        from mim_jax.data import video_io

        return video_io.VideoListSource(_list_file(data, split), data.root)
    if data.name == "video_folder":
        from mim_jax.data import video_io

        return video_io.VideoFolderSource(data.root, split)
    if data.name == "video_array_record":
        from mim_jax.data import video_io

        return video_io.ClipArrayRecordSource(data.root, split)
    if data.name == "spoken_keywords":
        from mim_jax.data import spoken_keywords

        directory = spoken_keywords.generate(data.root or spoken_keywords.DEFAULT_ROOT, split)
        return FolderSource(str(directory.parent), split, data.index_cache_dir, AUDIO_EXTENSIONS)
    if data.name == "audio_folder":
        return FolderSource(data.root, split, data.index_cache_dir, AUDIO_EXTENSIONS)
    if data.name == "audio_list":
        from mim_jax.data import audio_io

        class_csv = _rooted(data, "class_csv") if data.class_csv else None
        train_list = _list_file(data, data.train_split)  # classes seen in training
        return audio_io.AudioListSource(_list_file(data, split), data.root, class_csv, train_list)
    if data.name == "tfds_audio":
        from mim_jax.data import audio_io

        return audio_io.TfdsAudioSource(data.tfds_name, split, data.tfds_data_dir)
    raise ValueError(f"config.data.name={data.name!r}; valid: {', '.join(DATA_SOURCES)}")


def _list_file(data: ml_collections.ConfigDict, split: str) -> str:
    """config.data.train_list or eval_list (relative to data.root, if set), checked."""
    return _rooted(data, "train_list" if split == data.train_split else "eval_list")


def _rooted(data: ml_collections.ConfigDict, key: str) -> str:
    """The file named by config.data.<key>, relative to data.root if set; it must exist."""
    if not data[key]:
        raise ValueError(f"config.data.name={data.name!r} needs config.data.{key}")
    path = os.path.join(data.root or "", data[key])
    if not os.path.exists(path):
        raise FileNotFoundError(f"config.data.{key}: no file {path}")
    return path
