"""Per-example numpy/PIL transforms (grain map transforms); outputs stay uint8."""

import dataclasses
import math

import grain
import numpy as np
from PIL import Image


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


def resized_crop(image: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Crop (top, left, h, w) and resize to size x size with bicubic interpolation."""
    top, left, h, w = box
    if (h, w) == (size, size):
        return image[top : top + h, left : left + w]
    pil = _to_pil(image).resize(
        (size, size), Image.Resampling.BICUBIC, box=(left, top, left + w, top + h)
    )
    return _from_pil(pil)


def resize_center_crop(image: np.ndarray, size: int, crop_pct: float) -> np.ndarray:
    """Eval transform: shorter side to int(size / crop_pct) (bicubic), then center crop."""
    h, w = image.shape[:2]
    short = int(size / crop_pct)
    if min(h, w) != short:  # torchvision Resize(int): long side = int(short * long / short)
        new_h, new_w = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
        image = _from_pil(_to_pil(image).resize((new_w, new_h), Image.Resampling.BICUBIC))
        h, w = new_h, new_w
    top, left = round((h - size) / 2.0), round((w - size) / 2.0)
    return image[top : top + size, left : left + size]


@dataclasses.dataclass(frozen=True)
class TrainTransform(grain.transforms.RandomMap):
    """RandomResizedCrop (+ horizontal flip) to uint8 [size, size, channels]."""

    size: int
    channels: int
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    flip: bool = True

    def random_map(self, element: dict, rng: np.random.Generator) -> dict:
        image = match_channels(np.asarray(element["image"]), self.channels)
        box = random_resized_crop_box(rng, *image.shape[:2], self.scale, self.ratio)
        image = resized_crop(image, box, self.size)
        if self.flip and rng.random() < 0.5:
            image = image[:, ::-1]
        return {"image": np.ascontiguousarray(image), "label": np.int32(element["label"])}


@dataclasses.dataclass(frozen=True)
class EvalTransform(grain.transforms.Map):
    """Deterministic resize + center crop to uint8 [size, size, channels]."""

    size: int
    channels: int
    crop_pct: float = 1.0

    def map(self, element: dict) -> dict:
        image = match_channels(np.asarray(element["image"]), self.channels)
        image = resize_center_crop(image, self.size, self.crop_pct)
        return {"image": np.ascontiguousarray(image), "label": np.int32(element["label"])}
