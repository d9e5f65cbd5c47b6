"""Video list -> ArrayRecord shards of pre-sampled JPEG clips, so training reads a few
JPEGs per clip instead of seeking and decoding videos.

    python -m mim_jax.data.convert_video --list=/data/k400/train.csv --root=/data/k400 \
        --dst=/data/k400_clips --split=train --clips_per_video=4 --num_frames=16 \
        --sampling_rate=4 --short_side=320 --workers=16

reads a VideoMAE/Kinetics list (`path label` or `path num_frames label` per line; see
`video_io.parse_list`), takes `clips_per_video` clips of `num_frames` frames every
`sampling_rate` frames, spread evenly over each video (first clip at the start, last at the
end), resizes frames to a short side of `short_side` pixels and writes
`dst/<split>.array_record-XXXXX-of-YYYYY` (records: `video_io.pack_clip`, msgpack
{"frames": JPEG bytes per frame, "label", "path", "clip"}) plus `dst/dataset_info.json`
(per split: example counts, files, skipped videos and the sampling settings; other splits
already there are kept). Unreadable videos are skipped and listed. Read the clips back
with `video_io.ClipArrayRecordSource(dst, split)`.
"""

import io
import json
import multiprocessing
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from absl import app, flags, logging
from array_record.python.array_record_module import ArrayRecordWriter
from PIL import Image

from mim_jax.data import decode, video_io


@dataclass(frozen=True)
class ClipSpec:
    """How clips are cut from each video and stored."""

    clips_per_video: int = 4
    num_frames: int = 16
    sampling_rate: int = 4
    short_side: int = 320
    quality: int = 90

    @property
    def span(self) -> int:
        """Frames from a clip's first to its last, inclusive."""
        return (self.num_frames - 1) * self.sampling_rate + 1


def clip_indices(video_frames: int, spec: ClipSpec) -> np.ndarray:
    """int64 [clips_per_video, num_frames]: frame indices of each clip, starts spread evenly
    from 0 to the last full span; past the end of a short video they repeat the last frame."""
    last_start = max(video_frames - spec.span, 0)
    starts = np.round(np.linspace(0, last_start, spec.clips_per_video)).astype(np.int64)
    offsets = np.arange(spec.num_frames, dtype=np.int64) * spec.sampling_rate
    return np.minimum(starts[:, None] + offsets, max(video_frames - 1, 0))  # [K, T]


def resize_short_side(frame: np.ndarray, short_side: int) -> np.ndarray:
    """uint8 [H, W, 3] -> [H', W', 3] with min(H', W') == short_side (bilinear; 0 keeps)."""
    h, w = frame.shape[:2]
    if short_side <= 0 or min(h, w) == short_side:
        return frame
    scale = short_side / min(h, w)
    size = (max(round(w * scale), 1), max(round(h * scale), 1))  # PIL: (width, height)
    return np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR))


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def video_clips(path: str, label: int, spec: ClipSpec) -> list[bytes]:
    """The video's `pack_clip` records, all clips read with one decode pass."""
    info = video_io.probe(path)
    indices = clip_indices(info.num_frames, spec)  # [K, T]
    frames = video_io.read_video(path, indices.reshape(-1))  # [K * T, H, W, 3]
    jpegs = [encode_jpeg(resize_short_side(f, spec.short_side), spec.quality) for f in frames]
    t = spec.num_frames
    return [
        video_io.pack_clip(jpegs[k * t : (k + 1) * t], label, path, k)
        for k in range(spec.clips_per_video)
    ]


def _convert_one(args: tuple[str, int, ClipSpec]) -> tuple[list[bytes] | None, str | None]:
    """(records, None), or (None, why the video is unusable)."""
    path, label, spec = args
    try:
        return video_clips(path, label, spec), None
    except (OSError, decode.DecodeError) as e:  # VideoError is a DecodeError
        return None, str(e)


class _ShardWriter:
    """Records into `<split>.array_record-XXXXX.tmp` files of about `shard_bytes` each,
    renamed `-XXXXX-of-YYYYY` by `close` once the count is known."""

    def __init__(self, dst: Path, split: str, shard_bytes: int):
        self.dst, self.split, self.shard_bytes = dst, split, max(shard_bytes, 1)
        self.counts: list[int] = []
        self._writer, self._bytes = None, 0

    def _tmp(self, shard: int) -> Path:
        return self.dst / f"{self.split}.array_record-{shard:05d}.tmp"

    def _next_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = ArrayRecordWriter(str(self._tmp(len(self.counts))), "group_size:1")
        self.counts.append(0)
        self._bytes = 0

    def write(self, record: bytes) -> None:
        if self._writer is None or self._bytes >= self.shard_bytes:
            self._next_shard()
        self._writer.write(record)
        self.counts[-1] += 1
        self._bytes += len(record)

    def close(self) -> list[str]:
        """The final shard names (a split with no records gets one empty shard)."""
        if self._writer is None:
            self._next_shard()
        self._writer.close()
        n = len(self.counts)
        names = [f"{self.split}.array_record-{i:05d}-of-{n:05d}" for i in range(n)]
        for i, name in enumerate(names):
            self._tmp(i).replace(self.dst / name)
        return names


def convert_split(
    list_file: str,
    root: str | None,
    dst: Path,
    split: str,
    spec: ClipSpec,
    shard_bytes: int,
    workers: int,
) -> dict:
    """Writes one split's shards; returns its dataset_info entry."""
    paths, labels, _ = video_io.parse_list(list_file, root)
    jobs = [(p, int(y), spec) for p, y in zip(paths, labels)]
    shards = _ShardWriter(dst, split, shard_bytes)
    skipped = []
    with multiprocessing.get_context("spawn").Pool(max(workers, 1)) as pool:  # no fork of JAX
        for i, (records, error) in enumerate(pool.imap(_convert_one, jobs, chunksize=4)):
            if error is not None:
                skipped.append({"path": paths[i], "error": error})
                logging.warning("Skipping %s: %s", paths[i], error)
                continue
            for record in records:
                shards.write(record)
            if (i + 1) % 1000 == 0:
                logging.info("%s: %d / %d videos", split, i + 1, len(paths))
    names = shards.close()
    num_examples = sum(shards.counts)
    logging.info(
        "%s: %d clips of %d videos in %d shards, %d videos skipped",
        split,
        num_examples,
        len(paths) - len(skipped),
        len(names),
        len(skipped),
    )
    return {
        "num_examples": num_examples,
        "files": names,
        "skipped": skipped,
        "list": os.path.abspath(list_file),
        "num_videos": len(paths) - len(skipped),
        **asdict(spec),
    }


def convert(
    list_file: str,
    root: str | None,
    dst: str,
    split: str,
    spec: ClipSpec,
    shard_mb: float = 1024,
    workers: int = 1,
) -> dict:
    """Converts one split and writes (or updates) `dst/dataset_info.json`; returns it."""
    if spec.clips_per_video < 1 or spec.num_frames < 1 or spec.sampling_rate < 1:
        raise ValueError(f"clips_per_video, num_frames and sampling_rate must be >= 1: {spec}")
    dst_dir = Path(dst)
    dst_dir.mkdir(parents=True, exist_ok=True)
    entry = convert_split(list_file, root, dst_dir, split, spec, int(shard_mb * 2**20), workers)
    info_path = dst_dir / "dataset_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    info.setdefault("source", os.path.abspath(root or os.path.dirname(list_file) or "."))
    info.setdefault("splits", {})[split] = entry
    tmp = info_path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(info, indent=1))
    tmp.replace(info_path)
    return info


def _define_flags() -> None:
    """CLI flags, defined only when run as a script, so importing this module next to
    mim_jax.data.convert (which has --dst too) does not clash in absl's flag registry."""
    global _LIST, _ROOT, _DST, _SPLIT, _CLIPS, _NUM_FRAMES, _RATE, _SHORT_SIDE, _QUALITY
    global _SHARD_MB, _WORKERS
    _LIST = flags.DEFINE_string("list", None, "Video list file (path [num_frames] label per line).")
    _ROOT = flags.DEFINE_string(
        "root", None, "Root of relative paths (default: the list's folder)."
    )
    _DST = flags.DEFINE_string("dst", None, "Output directory.")
    _SPLIT = flags.DEFINE_string("split", "train", "Split name of the shards and in the info.")
    _CLIPS = flags.DEFINE_integer("clips_per_video", 4, "Clips per video, spread evenly.")
    _NUM_FRAMES = flags.DEFINE_integer("num_frames", 16, "Frames per clip.")
    _RATE = flags.DEFINE_integer("sampling_rate", 4, "Frame stride within a clip.")
    _SHORT_SIDE = flags.DEFINE_integer(
        "short_side", 320, "Resize the short side to this (0: keep)."
    )
    _QUALITY = flags.DEFINE_integer("quality", 90, "JPEG quality.")
    _SHARD_MB = flags.DEFINE_float("shard_mb", 1024, "Approximate size of one shard file (MB).")
    _WORKERS = flags.DEFINE_integer("workers", os.cpu_count() or 1, "Processes decoding videos.")


def main(argv):
    del argv
    spec = ClipSpec(
        clips_per_video=_CLIPS.value,
        num_frames=_NUM_FRAMES.value,
        sampling_rate=_RATE.value,
        short_side=_SHORT_SIDE.value,
        quality=_QUALITY.value,
    )
    convert(
        _LIST.value, _ROOT.value, _DST.value, _SPLIT.value, spec, _SHARD_MB.value, _WORKERS.value
    )


if __name__ == "__main__":
    _define_flags()
    flags.mark_flags_as_required(["list", "dst"])
    app.run(main)
