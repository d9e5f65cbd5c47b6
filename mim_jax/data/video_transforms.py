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
from collections.abc import Callable

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


def span_clip(rng: np.random.Generator, length: int, num_frames: int, rate: int) -> np.ndarray:
    """A fine-tuning clip as VideoMAE's Kinetics loader samples it (`loadvideo_decord`,
    train): `num_frames` evenly spaced (float, truncated) positions over a random span of
    rate * num_frames frames; a video no longer than the span gives its length // rate
    evenly spaced frames, then its last frame repeated."""
    span = num_frames * rate
    if length <= span:
        count = length // rate
        index = np.concatenate(
            [np.linspace(0, length, num=count), np.full(num_frames - count, length)]
        )
        return np.clip(index, 0, length - 1).astype(np.int64)
    end = int(rng.integers(span, length))  # np.random.randint(converted_len, seg_len)
    index = np.linspace(end - span, end, num=num_frames)
    return np.clip(index, end - span, end - 1).astype(np.int64)


def segment_clip(rng: np.random.Generator, length: int, num_frames: int) -> np.ndarray:
    """One random frame per equal segment of the whole video, as VideoMAE's SSv2 loader
    (TSN sampling, `SSVideoClsDataset.loadvideo_decord`, train); videos shorter than
    `num_frames` give sorted random frames, or frame 0."""
    segment = length // num_frames
    if segment > 0:
        return np.arange(num_frames) * segment + rng.integers(segment, size=num_frames)
    if length > num_frames:
        return np.sort(rng.integers(length, size=num_frames))
    return np.zeros(num_frames, np.int64)


def view_clips(
    length: int, num_frames: int, rate: int, num_clips: int, sampling: str
) -> list[np.ndarray]:
    """The temporal views of a video for multi-view testing (VideoMAE test mode).

    stride/span (Kinetics): clip k starts at int(k * step) of the strided frames
    range(0, length, rate) (padded with the last), step = (count - T) / (num_clips - 1),
    so the clips spread over the whole video. segments (SSv2): clip k takes frame
    int(tick * (x + k / num_clips)) of segment x, tick = length / T (the official 2 views
    are the segment starts and midpoints). One clip: the centre clip (midpoints for
    segments)."""
    if sampling == "segments":
        tick = length / num_frames
        offsets = [0.5] if num_clips == 1 else [k / num_clips for k in range(num_clips)]
        return [
            np.minimum((tick * (np.arange(num_frames) + o)).astype(np.int64), max(length - 1, 0))
            for o in offsets
        ]
    if num_clips == 1:
        return [center_clip(length, num_frames, rate)]
    strided = np.arange(0, length, rate)
    strided = np.concatenate([strided, np.full(max(num_frames - len(strided), 0), strided[-1])])
    step = max((len(strided) - num_frames) / (num_clips - 1), 0.0)
    return [strided[int(k * step) : int(k * step) + num_frames] for k in range(num_clips)]


def resize_short_side(frames: np.ndarray, size: int) -> np.ndarray:
    """[T, H, W, C] -> the short side `size`, the long side int(size * long / short),
    bilinear (the official test-time `Resize(short_side_size)`)."""
    h, w = frames.shape[1:3]
    new_h, new_w = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    if (new_h, new_w) == (h, w):
        return frames
    return crop_resize_clip(frames, (0, 0, h, w), (new_h, new_w))


def view_crops(frames: np.ndarray, size: int, num_crops: int) -> list[np.ndarray]:
    """The spatial views for multi-view testing: the short side resized to `size`, then
    `num_crops` squares along the long side at int(k * (long - size) / (num_crops - 1))
    (VideoMAE test mode: left/top, centre, right/bottom for 3)."""
    frames = resize_short_side(frames, size)
    h, w = frames.shape[1:3]
    if num_crops == 1:
        top, left = (h - size) // 2, (w - size) // 2
        return [frames[:, top : top + size, left : left + size]]
    step = (max(h, w) - size) / (num_crops - 1)
    starts = [int(k * step) for k in range(num_crops)]
    if h >= w:
        return [frames[:, s : s + size] for s in starts]
    return [frames[:, :, s : s + size] for s in starts]


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


def crop_resize_clip(
    frames: np.ndarray, box: tuple[int, int, int, int], size: int | tuple[int, int]
) -> np.ndarray:
    """[T, H, W, C] uint8 -> [T, size, size, C] (or [T, *size]): the same box on every
    frame, bilinear resize (PIL, as the official group transforms)."""
    top, left, h, w = box
    out_h, out_w = (size, size) if isinstance(size, int) else size
    out = []
    for frame in frames:
        crop = frame[top : top + h, left : left + w]
        if crop.shape[:2] != (out_h, out_w):
            pil = Image.fromarray(crop[..., 0] if crop.shape[-1] == 1 else crop)
            crop = np.asarray(pil.resize((out_w, out_h), Image.Resampling.BILINEAR))
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
    sampling: str = "stride"  # stride | span | segments (config.data.clip_sampling)
    # RandAugment on the decoded frames before the crop, the same ops on every frame of a
    # clip (VideoMAE fine-tuning `_aug_frame`), or None
    randaugment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None

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
            if self.randaugment is not None:
                video = self.randaugment(video, rng)
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
        if self.sampling == "span":
            return span_clip(rng, length, self.num_frames, self.sampling_rate)
        if self.sampling == "segments":
            return segment_clip(rng, length, self.num_frames)
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
    {"image": uint8 [T, S, S, C], "label"}. With num_clips x num_crops > 1 the views of
    multi-view testing (`view_clips` x `view_crops`), clip-major: "image" [V, T, S, S, C]."""

    num_frames: int
    sampling_rate: int
    size: int
    channels: int
    crop_pct: float = 1.0
    num_clips: int = 1
    num_crops: int = 1
    sampling: str = "stride"  # config.data.clip_sampling: where the views' frames are

    def map(self, element: dict) -> dict:
        if "error" in element:
            return element
        try:
            length, _ = _length_fps(element)
            pre_sampled = "frames" in element  # already at the sampling rate
            rate = 1 if pre_sampled else self.sampling_rate
            sampling = "stride" if pre_sampled else self.sampling
            clips = view_clips(length, self.num_frames, rate, self.num_clips, sampling)
            wanted = np.unique(np.concatenate(clips))
            frames = read_frames(element, wanted, self.channels)
        except decode.DecodeError as e:
            return _bad(element, e)
        views = []
        for clip in clips:
            video = frames[np.searchsorted(wanted, clip)]
            if self.num_crops > 1:
                views.extend(view_crops(video, self.size, self.num_crops))
                continue
            h, w = video.shape[1:3]
            side = max(1, round(min(h, w) * self.crop_pct))
            box = ((h - side) // 2, (w - side) // 2, side, side)
            views.append(crop_resize_clip(video, box, self.size))
        image = views[0] if len(views) == 1 else np.stack(views)
        return {"image": np.ascontiguousarray(image), "label": np.int32(element["label"])}


def flatten_samples(batch: dict) -> dict:
    """[b, R, ...] clips and labels -> [b * R, ...]: repeated samples become batch rows."""
    out = dict(batch)
    for key in ("image", "label"):
        x = batch[key]
        out[key] = x.reshape(-1, *x.shape[2:])
    return out
