"""Per-example numpy/PIL transforms (grain map transforms); outputs stay uint8.

Elements are {"image": uint8 array, "label"} (decoded sources) or {"encoded": bytes,
"label", "path"} (image files, ArrayRecord). Encoded images are decoded here, in the
worker, at the smallest DCT scale the crop allows; an undecodable one becomes
{"error": message, "path": path}, which the pipeline drops and counts.
"""

import dataclasses
import math
from collections.abc import Callable

import grain
import numpy as np
from PIL import Image

from mim_jax.data import decode


def match_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """[H, W, c] uint8 -> [H, W, channels]: grey -> RGB repeats, RGBA drops alpha, RGB -> grey."""
    if image.ndim == 2:
        image = image[..., None]
    c = image.shape[-1]
    if c == channels:
        return image
    if c == 1 and channels == 3:
        return np.repeat(image, 3, axis=-1)
    if c == 4 and channels == 3:
        return image[..., :3]
    if c in (3, 4) and channels == 1:
        return np.asarray(Image.fromarray(image[..., :3]).convert("L"))[..., None]
    raise ValueError(f"cannot convert a {c}-channel image to {channels} channels")


def random_resized_crop_box(
    rng: np.random.Generator,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> tuple[int, int, int, int]:
    """(top, left, h, w) sampled exactly as torchvision's `RandomResizedCrop.get_params`:
    10 attempts at a random area fraction and log-uniform aspect ratio, then a center
    crop clamped to the ratio range."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        h, w = height, round(height * max(ratio))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def _from_pil(image: Image.Image) -> np.ndarray:
    out = np.asarray(image)
    return out[..., None] if out.ndim == 2 else out


def resized_crop(
    image: np.ndarray,
    box: tuple[int, int, int, int],
    size: int,
    scale: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """Crop (top, left, h, w) and resize to size x size with bicubic interpolation (PIL,
    antialiased, as torchvision's PIL path). `scale` = (y, x) size of `image` relative to
    the image `box` was drawn on (a JPEG decoded at reduced DCT size)."""
    top, left, h, w = box
    sy, sx = scale
    if (h, w) == (size, size) and scale == (1.0, 1.0):
        return image[top : top + h, left : left + w]
    pil = _to_pil(image).resize(
        (size, size),
        Image.Resampling.BICUBIC,
        box=(left * sx, top * sy, (left + w) * sx, (top + h) * sy),
    )
    return _from_pil(pil)


def eval_resize_shape(height: int, width: int, size: int, crop_pct: float) -> tuple[int, int]:
    """torchvision Resize(int(size / crop_pct)): shorter side to that, long side truncated."""
    short = int(size / crop_pct)
    if height <= width:
        return short, int(short * width / height)
    return int(short * height / width), short


def resize_center_crop(
    image: np.ndarray, size: int, crop_pct: float, full_shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Eval transform: shorter side to int(size / crop_pct) (bicubic), then center crop.
    `full_shape`: the (h, w) `image` was reduced from, if it was decoded at reduced size."""
    h, w = full_shape or image.shape[:2]
    new_h, new_w = eval_resize_shape(h, w, size, crop_pct)
    if image.shape[:2] != (new_h, new_w):
        image = _from_pil(_to_pil(image).resize((new_w, new_h), Image.Resampling.BICUBIC))
    top, left = round((new_h - size) / 2.0), round((new_w - size) / 2.0)
    return image[top : top + size, left : left + size]


def _bad(element: dict, error: Exception) -> dict:
    return {"error": str(error), "path": str(element.get("path", "?"))}


@dataclasses.dataclass(frozen=True)
class TrainTransform(grain.transforms.RandomMap):
    """RandomResizedCrop (+ horizontal flip, + RandAugment) to uint8 [size, size, channels],
    in timm's `create_transform` order."""

    size: int
    channels: int
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    flip: bool = True
    # per-image augment after the flip (data/randaugment.RandAugment), or None
    randaugment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None

    def random_map(self, element: dict, rng: np.random.Generator) -> dict:
        if "error" in element:  # unreadable at the source
            return element
        if "encoded" in element:
            try:
                image = self._decode_crop(element["encoded"], rng)
            except decode.DecodeError as e:
                return _bad(element, e)
        else:
            image = match_channels(np.asarray(element["image"]), self.channels)
            box = random_resized_crop_box(rng, *image.shape[:2], self.scale, self.ratio)
            image = resized_crop(image, box, self.size)
        if self.flip and rng.random() < 0.5:
            image = image[:, ::-1]
        if self.randaugment is not None:
            image = self.randaugment(np.ascontiguousarray(image), rng)
        return {"image": np.ascontiguousarray(image), "label": np.int32(element["label"])}

    def _decode_crop(self, data: bytes, rng: np.random.Generator) -> np.ndarray:
        """Draw the box on the full size, decode only as many pixels as it needs."""
        height, width = decode.size(data)
        box = random_resized_crop_box(rng, height, width, self.scale, self.ratio)
        _, _, h, w = box
        need = (math.ceil(height * self.size / h), math.ceil(width * self.size / w))
        image = decode.decode(data, self.channels, min_size=need)
        scale = (image.shape[0] / height, image.shape[1] / width)
        return resized_crop(image, box, self.size, scale)


@dataclasses.dataclass(frozen=True)
class EvalTransform(grain.transforms.Map):
    """Deterministic resize + center crop to uint8 [size, size, channels]."""

    size: int
    channels: int
    crop_pct: float = 1.0

    def map(self, element: dict) -> dict:
        if "error" in element:
            return element
        if "encoded" in element:
            try:
                full = decode.size(element["encoded"])
                need = eval_resize_shape(*full, self.size, self.crop_pct)
                image = decode.decode(element["encoded"], self.channels, min_size=need)
            except decode.DecodeError as e:
                return _bad(element, e)
            image = resize_center_crop(image, self.size, self.crop_pct, full_shape=full)
        else:
            image = match_channels(np.asarray(element["image"]), self.channels)
            image = resize_center_crop(image, self.size, self.crop_pct)
        return {"image": np.ascontiguousarray(image), "label": np.int32(element["label"])}
