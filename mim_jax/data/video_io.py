"""Reading video frames for a data pipeline: video files (PyAV) or folders of frames.

`read_video(path, indices)` returns the frames at arbitrary 0-based indices as uint8
[len(indices), H, W, 3]. A video file is opened once, sought to the keyframe before the
first wanted frame and decoded forward only to the last one, so a 16-frame clip from a long
video does not decode the whole file, and several clips are read with one call by passing
the union of their indices. Indices past the end give the last frame (as the official
VideoMAE / SlowFast loaders clamp).

Sources: `VideoListSource` over the official VideoMAE / Kinetics annotation lists (decoding
happens later, in the transforms), and `ClipArrayRecordSource` over pre-sampled JPEG clips
written by `python -m mim_jax.data.convert_video`.
"""

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import msgpack
import numpy as np

from mim_jax.data import decode, sources

_SEEK_MARGIN = 0.5  # frames: seek a little before the wanted frame's time (rounded pts)


class VideoError(decode.DecodeError):
    """An unreadable, corrupt, truncated or empty video (or frame folder)."""


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int  # exact where the container says so, else duration * fps
    fps: float  # 0.0 for a frame folder (no timing)
    height: int
    width: int


# ------------------------------------------------------------------ video files
def _open(path: str) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """The container and its first video stream, threaded decoding on."""
    container = av.open(path, metadata_errors="ignore")
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame + slice threads where the codec allows
    return container, stream


def _why(error: Exception) -> str:
    """An FFmpeg/OS error without the file name (the message starts with it already)."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def _fps(stream: av.video.stream.VideoStream) -> float:
    """Frames per second from the stream's rates (0.0 when it has none)."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0:
            return float(rate)
    return 0.0


def _count_packets(container: av.container.InputContainer, stream) -> int:
    """Frames counted by demuxing (no decoding): for containers without count or duration."""
    return sum(1 for p in container.demux(stream) if p.size > 0)


def _declared_frames(container: av.container.InputContainer, stream, fps: float) -> int:
    """The frame count the container declares, else duration * fps; 0 when unknown."""
    if stream.frames > 0:  # 0 for webm/mkv and some avi
        return stream.frames
    if fps <= 0:
        return 0
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    else:  # the container's duration, in microseconds
        seconds = (container.duration or 0) / av.time_base
        if "matroska" in container.format.name and container.start_time:
            seconds -= container.start_time / av.time_base  # there it is the end time
    return max(round(seconds * fps), 0)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame count, rate and size of a video file or a frame folder."""
    path = str(path)
    if os.path.isdir(path):
        return _probe_folder(path)
    try:
        container, stream = _open(path)
        with container:
            fps = _fps(stream)
            num_frames = _declared_frames(container, stream, fps)
            if num_frames <= 0:
                num_frames = _count_packets(container, stream)
            height, width = stream.codec_context.height, stream.codec_context.width
    except (av.FFmpegError, OSError) as e:
        raise VideoError(f"{path}: unreadable video: {_why(e)}") from e
    if num_frames <= 0 or height <= 0 or width <= 0:
        raise VideoError(f"{path}: empty video ({num_frames} frames of {height}x{width})")
    return VideoInfo(int(num_frames), fps, int(height), int(width))


def _decoded(container: av.container.InputContainer, stream) -> Iterator[av.VideoFrame]:
    """The stream's frames in presentation order from the current position."""
    return container.decode(stream)


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """uint8 [H, W, 3]. One swscale thread: PyAV >= 17 defaults to one per core, which costs
    far more than it saves on video-sized frames (6 ms instead of 0.2 ms for 320x240)."""
    return frame.to_ndarray(format="rgb24", threads=1)


def _frame_index(frame: av.VideoFrame, start: int, time_base: Fraction, fps: float) -> int | None:
    if frame.pts is None or fps <= 0:
        return None
    return round(float((frame.pts - start) * time_base) * fps)


def _truncated(declared: int, last: int) -> bool:
    """Whether decoding ended (at frame `last`) well before the declared frame count;
    durations may count a frame or two more than there are."""
    return declared > 0 and declared - (last + 1) > max(2, declared // 50)


def _decode_wanted(path: str, wanted: np.ndarray, seek: bool) -> dict[int, np.ndarray] | None:
    """{index: uint8 [H, W, 3]} for sorted unique `wanted`; None when the seek failed or
    landed after wanted[0] (bad timestamps or index: the caller decodes from the start)."""
    container, stream = _open(path)
    with container:
        fps = _fps(stream)
        start = stream.start_time or 0
        time_base = stream.time_base or Fraction(1, 1)
        if stream.time_base is None:  # timestamps without a unit: count frames instead
            fps = 0.0
        sought = seek and fps > 0 and wanted[0] > 0
        if sought:
            target = start + int((wanted[0] - _SEEK_MARGIN) / fps / time_base)
            try:
                container.seek(target, stream=stream, backward=True, any_frame=False)
            except av.FFmpegError:  # an unseekable file: decode it from the start
                return None
        out: dict[int, np.ndarray] = {}
        p, index = 0, -1
        previous, previous_rgb = None, None  # the last decoded frame, RGB once needed
        for frame in _decoded(container, stream):
            pts_index = _frame_index(frame, start, time_base, fps)
            if pts_index is None and sought:  # no timestamps: frames are counted from 0
                return None
            index = index + 1 if pts_index is None else pts_index
            if sought and previous is None and index > wanted[0]:
                return None
            # Wanted frames before this one: the frame shown at their time (held).
            while p < len(wanted) and wanted[p] < index:
                if previous is None:  # the first frame starts late: it stands in
                    out[int(wanted[p])] = _rgb(frame)
                else:
                    if previous_rgb is None:
                        previous_rgb = _rgb(previous)
                    out[int(wanted[p])] = previous_rgb
                p += 1
            previous, previous_rgb = frame, None
            if p < len(wanted) and wanted[p] == index:
                previous_rgb = out[int(wanted[p])] = _rgb(frame)
                p += 1
            if p == len(wanted):
                return out
        if previous is None:
            raise VideoError(f"{path}: no decodable frames")
        declared = _declared_frames(container, stream, fps)
        if _truncated(declared, index):
            raise VideoError(f"{path}: truncated: frames end at {index}, {declared} declared")
        last = _rgb(previous) if previous_rgb is None else previous_rgb
        for i in wanted[p:]:  # past the end: the last frame
            out[int(i)] = last
        return out


def _checked_indices(where: str, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Frame indices as int64 [N], failing (naming `where`) when empty or negative."""
    indices = np.asarray(indices, np.int64).reshape(-1)
    if indices.size == 0:
        raise ValueError(f"{where}: no frame indices")
    if indices.min() < 0:
        raise ValueError(f"{where}: negative frame index {int(indices.min())}")
    return indices


def read_frames(path: str | os.PathLike, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """uint8 [len(indices), H, W, 3]: the frames of a video file at 0-based `indices` (any
    order, repeats allowed; past the end gives the last frame), decoding only from the
    keyframe before the first wanted frame to the last wanted one."""
    path = str(path)
    indices = _checked_indices(path, indices)
    wanted = np.unique(indices)  # sorted
    try:
        frames = _decode_wanted(path, wanted, seek=True)
        if frames is None:
            frames = _decode_wanted(path, wanted, seek=False)
    except VideoError:
        raise
    except (av.FFmpegError, OSError) as e:
        raise VideoError(f"{path}: unreadable video: {_why(e)}") from e
    return _stack(path, [frames[int(i)] for i in indices])


def _stack(path: str, frames: list[np.ndarray]) -> np.ndarray:
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise VideoError(f"{path}: frames of different sizes {sorted(shapes)}")
    return np.stack(frames)  # [T, H, W, 3]


# ------------------------------------------------------------------ frame folders
def list_frames(directory: str | os.PathLike) -> list[str]:
    """Image file names in a folder of pre-extracted frames, sorted (img_00001.jpg, ...)."""
    try:
        names = [
            e.name
            for e in os.scandir(directory)
            if e.name.lower().endswith(sources.IMAGE_EXTENSIONS) and e.name[0] != "."
        ]
    except OSError as e:
        raise VideoError(f"{directory}: unreadable frame folder: {e}") from e
    if not names:
        raise VideoError(f"{directory}: no frames ({', '.join(sources.IMAGE_EXTENSIONS)})")
    return sorted(names)


def _probe_folder(directory: str) -> VideoInfo:
    names = list_frames(directory)
    try:
        height, width = decode.size(Path(directory, names[0]).read_bytes())
    except (OSError, decode.DecodeError) as e:
        raise VideoError(f"{directory}/{names[0]}: {e}") from e
    return VideoInfo(len(names), 0.0, height, width)


def read_frame_folder(
    directory: str | os.PathLike, indices: Sequence[int] | np.ndarray
) -> np.ndarray:
    """uint8 [len(indices), H, W, 3]: frames at 0-based `indices` into the sorted image files
    of `directory` (past the end gives the last one); each file is decoded once."""
    directory = str(directory)
    indices = _checked_indices(directory, indices)
    names = list_frames(directory)
    indices = np.minimum(indices, len(names) - 1)
    frames = {}
    for i in np.unique(indices):
        path = os.path.join(directory, names[i])
        try:
            frames[int(i)] = decode.decode(Path(path).read_bytes(), 3)
        except (OSError, decode.DecodeError) as e:
            raise VideoError(f"{path}: {e}") from e
    return _stack(directory, [frames[int(i)] for i in indices])


def read_video(path: str | os.PathLike, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """uint8 [len(indices), H, W, 3] from a video file or a folder of frames."""
    if os.path.isdir(path):
        return read_frame_folder(path, indices)
    return read_frames(path, indices)


# ------------------------------------------------------------------ annotation lists
_LIST_FORMAT = "'path label' or 'path num_frames label' (whitespace- or comma-separated)"


def _is_int(token: str) -> bool:
    try:
        int(token)
        return True
    except ValueError:
        return False


def _split(line: str, fields: int) -> list[str]:
    """A line's fields, comma-separated when the fields after the path are, else by
    whitespace. Only the last `fields - 1` are split off: a path may hold spaces (Kinetics
    class folders such as 'air drumming/') or commas."""
    if "," in line:
        parts = [t.strip() for t in line.rsplit(",", fields - 1)]
        if len(parts) == fields and all(map(_is_int, parts[1:])):
            return parts
    return line.rsplit(maxsplit=fields - 1)


def _num_fields(line: str) -> int:
    """3 when the first line is `path num_frames label`, else 2."""
    tokens = _split(line, 3)
    return 3 if len(tokens) == 3 and _is_int(tokens[1]) and _is_int(tokens[2]) else 2


def _join(root: str, path: str) -> str:
    if os.path.isabs(path) or "://" in path:
        return path
    return os.path.join(root, path)


def parse_list(
    list_file: str, root: str | None = None
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """(paths, int32 labels, int64 frame counts or None) from a VideoMAE/Kinetics list: one
    video per line, `path label` or `path num_frames label` (SSv2 rawframes). Relative
    paths are joined to `root` (None or "": the list file's directory)."""
    if not os.path.isfile(list_file):
        raise FileNotFoundError(f"No video list file {list_file}")
    root = root or os.path.dirname(os.path.abspath(list_file))
    paths, labels, counts, fields = [], [], [], None
    with open(list_file, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            line = raw.strip()
            if not line:
                continue
            where = f"{list_file}:{number}"
            fields = fields or _num_fields(line)  # the first line decides
            parts = _split(line, fields)
            if len(parts) != fields or not parts[0] or not all(map(_is_int, parts[1:])):
                raise ValueError(
                    f"{where}: expected {_LIST_FORMAT} with integer fields, the same in every "
                    f"line ({fields} fields, from the first line); got {line!r}"
                )
            paths.append(_join(root, parts[0]))
            labels.append(int(parts[-1]))
            if fields == 3:
                counts.append(int(parts[1]))
    if not paths:
        raise ValueError(f"{list_file}: no videos (expected {_LIST_FORMAT}, one per line)")
    num_frames = np.asarray(counts, np.int64) if fields == 3 else None
    return paths, np.asarray(labels, np.int32), num_frames


class VideoListSource:
    """A video list as {"video": absolute path, "label", "path": as listed, joined to the
    root}, plus "num_frames" where the list gives frame counts (SSv2 rawframes). No I/O per
    element: videos are decoded later by the transforms, in the worker processes."""

    def __init__(self, list_file: str, root: str | None = None):
        self.list_file = list_file
        paths, self.labels, self.num_frames = parse_list(list_file, root)
        self.paths = paths
        self.videos = [p if "://" in p else os.path.abspath(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        item = {"video": self.videos[index], "label": self.labels[index], "path": self.paths[index]}
        if self.num_frames is not None:
            item["num_frames"] = self.num_frames[index]
        return item


VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".ts")


class VideoFolderSource:
    """`root/<split>/<class>/<video file or frame folder>` as {"video", "label", "path"};
    classes are the sorted class directory names (as an ImageFolder)."""

    def __init__(self, root: str, split: str):
        directory = Path(root).absolute() / split
        if not directory.is_dir():
            raise FileNotFoundError(
                f"config.data.root={root!r} has no {split!r} directory ({directory}); "
                "expected <root>/<split>/<class>/<video>"
            )
        self.classes = sorted(
            e.name for e in os.scandir(directory) if e.is_dir() and e.name[0] != "."
        )
        self.videos, labels = [], []
        for label, name in enumerate(self.classes):
            for entry in sorted(os.scandir(directory / name), key=lambda e: e.name):
                is_video = entry.is_file() and entry.name.lower().endswith(VIDEO_EXTENSIONS)
                if entry.name[0] != "." and (is_video or entry.is_dir()):
                    self.videos.append(entry.path)
                    labels.append(label)
        if not self.videos:
            raise FileNotFoundError(
                f"No videos ({', '.join(VIDEO_EXTENSIONS)}) or frame folders under "
                f"{directory}/<class>/"
            )
        self.labels = np.asarray(labels, np.int32)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict:
        path = self.videos[index]
        return {"video": path, "label": self.labels[index], "path": path}


# ------------------------------------------------------------------ ArrayRecord clips
def pack_clip(frames_jpeg: list[bytes], label: int, path: str, clip: int) -> bytes:
    """One ArrayRecord record: msgpack {"frames": JPEG bytes per frame, "label", "path",
    "clip": which of the video's clips}."""
    return msgpack.packb(
        {"frames": list(frames_jpeg), "label": int(label), "path": path, "clip": int(clip)}
    )


class ClipArrayRecordSource(sources.ArrayRecordSource):
    """ArrayRecord shards of `pack_clip`s (see mim_jax.data.convert_video), random access:
    {"frames": list of JPEG bytes, "label", "path"}."""

    FIELD = "frames"
    WRITER = "mim_jax.data.convert_video --list=LIST"
