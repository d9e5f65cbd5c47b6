"""Per-video transforms (grain maps): temporal sampling, spatial crops, repeated sampling.

Elements hold a video as {"video": path or uint8 [N, H, W, C], "label"} (files, frame
folders, generated clips) or {"frames": [encoded JPEG, ...], "label"} (pre-sampled clips
from `mim_jax.data.convert_video`). A training element becomes `num_samples` clips drawn
from ONE decode (repeated sampling, as MAE-ST `repeat_aug` and VideoMAE V2 `num_sample`),
so the cost of opening and decoding a video is paid once for several clips. A video that
cannot be read, or is shorter than `min_frames`, becomes {"error", "path"}: the pipeline
drops and counts it.
"""

import dataclasses

import grain
import numpy as np
from PIL import Image

from mim_jax.data import decode, transforms


def strided_clip(start: int, length: int, num_frames: int, rate: int) -> np.ndarray:
    """Indices start, start + rate, ...; VideoMAE's loader stops advancing once the next
    index would pass length - 2, repeating the last frame reached (short videos)."""
    last = max(0, (length - 2 - start) // rate)  # advances possible
    return start + rate * np.minimum(np.arange(num_frames), last)


def random_clip(rng: np.random.Generator, length: int, num_frames: int, rate: int) -> np.ndarray:
    """A training clip as VideoMAE samples it: start uniform in [0, length - T*rate]
    (`_sample_train_indices`, num_segments=1), 0 for videos shorter than that."""
    start = int(rng.integers(0, max(length - num_frames * rate, 0) + 1))
    return strided_clip(start, length, num_frames, rate)


def random_clip_fps(
    rng: np.random.Generator,
    length: int,
    num_frames: int,
    rate: int,
    fps: float,
    target_fps: float,
) -> np.ndarray:
    """A training clip as MAE-ST samples it: the span of rate*T frames at `target_fps`
    rescaled to the video's fps, T evenly spaced (float) positions in it, clamped to the
    video and truncated (`get_start_end_idx` + `temporal_sampling`)."""
    size = rate * num_frames / target_fps * fps
    start = rng.uniform(0, max(length - size, 0))
    positions = np.linspace(start, start + size - 1, num_frames)
    return np.clip(positions, 0, length - 1).astype(np.int64)


def center_clip(length: int, num_frames: int, rate: int) -> np.ndarray:
    """The clip in the middle of the video (evaluation)."""
    return strided_clip(max(length - num_frames * rate, 0) // 2, length, num_frames, rate)


def multiscale_crop_box(
    rng: np.random.Generator,
    height: int,
    width: int,
    size: int,
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66),
    max_distort: int = 1,
) -> tuple[int, int, int, int]:
    """(top, left, h, w) as VideoMAE's `GroupMultiScaleCrop` (from TSN) samples it: crop
    sides int(short side * scale) for a pair of scales at most `max_distort` apart (snapped
    to `size` within 3 px), placed at one of 13 fixed offsets (corners, centre, edge
    centres and quarter points: `fix_crop` and `more_fix_crop`)."""
    base = min(height, width)
    sides = [int(base * s) for s in scales]
    sides = [size if abs(s - size) < 3 else s for s in sides]
    pairs = [
        (w, h)
        for i, h in enumerate(sides)
        for j, w in enumerate(sides)
        if abs(i - j) <= max_distort
    ]
    crop_w, crop_h = pairs[int(rng.integers(len(pairs)))]
    ws, hs = (width - crop_w) // 4, (height - crop_h) // 4
    grid = ((0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4), (2, 0),
            (1, 1), (3, 1), (1, 3), (3, 3))  # fmt: skip
    x, y = grid[int(rng.integers(len(grid)))]
    return y * hs, x * ws, crop_h, crop_w


def crop_resize_clip(frames: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """[T, H, W, C] uint8 -> [T, size, size, C]: the same box on every frame, bilinear
    resize (PIL, as the official group transforms)."""
    top, left, h, w = box
    out = []
    for frame in frames:
        crop = frame[top : top + h, left : left + w]
        if crop.shape[:2] != (size, size):
            pil = Image.fromarray(crop[..., 0] if crop.shape[-1] == 1 else crop)
            crop = np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR))
            crop = crop[..., None] if crop.ndim == 2 else crop
        out.append(crop)
    return np.stack(out)


def _length_fps(element: dict) -> tuple[int, float | None]:
    """(frames, fps) of the element's video, probing files without decoding; fps is None
    where unknown (arrays, frame folders listed with their frame count)."""
    from mim_jax.data import video_io  # PyAV: imported only where videos are read

    if "frames" in element:
        return len(element["frames"]), None
    video = element["video"]
    if isinstance(video, str):
        if element.get("num_frames"):
            return int(element["num_frames"]), None
        info = video_io.probe(video)
        return info.num_frames, info.fps or None
    return len(video), None


def read_frames(element: dict, indices: np.ndarray, channels: int) -> np.ndarray:
    """The element's frames at `indices`: uint8 [len(indices), H, W, channels]."""
    from mim_jax.data import video_io

    if "frames" in element:
        frames = [decode.decode(element["frames"][i], channels) for i in indices]
        return np.stack(frames)
    video = element["video"]
    if isinstance(video, str):
        frames = video_io.read_video(video, indices)
    else:
        frames = np.asarray(video)[indices]
    if frames.shape[-1] != channels:
        frames = np.stack([transforms.match_channels(f, channels) for f in frames])
    return frames


def _bad(element: dict, error: Exception | str) -> dict:
    path = element.get("path") or element.get("video")
    return {"error": str(error), "path": path if isinstance(path, str) else "?"}


@dataclasses.dataclass(frozen=True)
class VideoTrainTransform(grain.transforms.RandomMap):
    """`num_samples` random clips of one video -> {"image": uint8 [R, T, S, S, C], "label":
    int32 [R]}. Crops: "multiscale" (VideoMAE) or "rrc" (RandomResizedCrop, MAE-ST); the
    crop (and flip) is drawn per clip and shared by its frames."""

    num_frames: int
    sampling_rate: int
    size: int
    channels: int
    num_samples: int = 1
    crop: str = "multiscale"
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    flip: bool = False
    min_frames: int = 0  # shorter videos are skipped; 0: num_frames
    target_fps: float = 0.0  # > 0: MAE-ST's fps-normalised span; 0: VideoMAE's integer stride
    share_frames: bool = False  # repeated samples share the frames, differ in crop

    def random_map(self, element: dict, rng: np.random.Generator) -> dict:
        if "error" in element:
            return element
        try:
            length, fps = _length_fps(element)
            if length < (self.min_frames or self.num_frames):
                return _bad(element, f"too short: {length} frames")
            if self.share_frames:  # VideoMAE V2: one temporal sample, several crops
                clips = [self._clip(rng, element, length, fps)] * self.num_samples
            else:  # MAE-ST: each repeat has its own temporal window
                clips = [self._clip(rng, element, length, fps) for _ in range(self.num_samples)]
            wanted = np.unique(np.concatenate(clips))
            frames = read_frames(element, wanted, self.channels)  # one decode for all clips
        except decode.DecodeError as e:
            return _bad(element, e)
        out = []
        for clip in clips:
            video = frames[np.searchsorted(wanted, clip)]
            out.append(self._crop(video, rng))
        label = np.full((self.num_samples,), element["label"], np.int32)
        return {"image": np.stack(out), "label": label}

    def _clip(
        self, rng: np.random.Generator, element: dict, length: int, fps: float | None
    ) -> np.ndarray:
        if "frames" in element:  # pre-sampled clips are already at the sampling rate
            return random_clip(rng, length, self.num_frames, 1)
        if self.target_fps:
            fps = fps or self.target_fps
            return random_clip_fps(
                rng, length, self.num_frames, self.sampling_rate, fps, self.target_fps
            )
        return random_clip(rng, length, self.num_frames, self.sampling_rate)

    def _crop(self, video: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = video.shape[1:3]
        if self.crop == "multiscale":
            box = multiscale_crop_box(rng, h, w, self.size, self.scales)
        elif self.crop == "rrc":
            box = transforms.random_resized_crop_box(rng, h, w, self.scale, self.ratio)
        else:
            raise ValueError(f"config.data.video_crop={self.crop!r}; valid: multiscale, rrc")
        video = crop_resize_clip(video, box, self.size)
        if self.flip and rng.random() < 0.5:
            video = video[:, :, ::-1]
        return np.ascontiguousarray(video)


@dataclasses.dataclass(frozen=True)
class VideoEvalTransform(grain.transforms.Map):
    """The centre clip, its centre square of side short side * crop_pct resized to size
    (bilinear; the official short-side resize + centre crop up to rounding):
    {"image": uint8 [T, S, S, C], "label"}."""

    num_frames: int
    sampling_rate: int
    size: int
    channels: int
    crop_pct: float = 1.0

    def map(self, element: dict) -> dict:
        if "error" in element:
            return element
        try:
            length, _ = _length_fps(element)
            rate = 1 if "frames" in element else self.sampling_rate
            indices = center_clip(length, self.num_frames, rate)
            wanted = np.unique(indices)
            frames = read_frames(element, wanted, self.channels)[np.searchsorted(wanted, indices)]
        except decode.DecodeError as e:
            return _bad(element, e)
        h, w = frames.shape[1:3]
        side = max(1, round(min(h, w) * self.crop_pct))
        box = ((h - side) // 2, (w - side) // 2, side, side)
        video = crop_resize_clip(frames, box, self.size)
        return {"image": video, "label": np.int32(element["label"])}


def flatten_samples(batch: dict) -> dict:
    """[b, R, ...] clips and labels -> [b * R, ...]: repeated samples become batch rows."""
    out = dict(batch)
    for key in ("image", "label"):
        x = batch[key]
        out[key] = x.reshape(-1, *x.shape[2:])
    return out
