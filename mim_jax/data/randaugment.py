"""timm's RandAugment (`--aa rand-m9-mstd0.5-inc1`, the MAE fine-tuning recipe) in NumPy + PIL.

Reproduces timm `data/auto_augment.py` op by op so fine-tuning recipes carry over without torch;
all randomness comes from a caller-supplied `np.random.Generator`.
"""

import dataclasses
import math
import re
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from mim_jax.data.transforms import _from_pil, _to_pil

# timm auto_augment.py _LEVEL_DENOM = 10 (magnitude M maps to op strength M / 10)
_LEVEL_DENOM = 10.0

# timm auto_augment.py _RAND_TRANSFORMS (used when the spec has no `inc` part)
RAND_OPS = (
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "Posterize",
    "Solarize",
    "SolarizeAdd",
    "Color",
    "Contrast",
    "Brightness",
    "Sharpness",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
)

# timm auto_augment.py _RAND_INCREASING_TRANSFORMS (`inc1`)
RAND_INCREASING_OPS = (
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "PosterizeIncreasing",
    "SolarizeIncreasing",
    "SolarizeAdd",
    "ColorIncreasing",
    "ContrastIncreasing",
    "BrightnessIncreasing",
    "SharpnessIncreasing",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
)

_ENHANCERS = {
    "Color": ImageEnhance.Color,
    "Contrast": ImageEnhance.Contrast,
    "Brightness": ImageEnhance.Brightness,
    "Sharpness": ImageEnhance.Sharpness,
}
_GEOMETRIC = frozenset(
    {"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY", "TranslateXRel", "TranslateYRel"}
)
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
_INTERPOLATIONS = (*_RESAMPLE, "random")


def _posterize(img: Image.Image, bits: int) -> Image.Image:
    # Keep the top `bits` bits. A LUT rather than ImageOps.posterize: Pillow >= 13 rejects bits=0,
    # which timm reaches at magnitude 10 and which older Pillow (timm's reference) made black.
    if bits >= 8:
        return img
    mask = (0xFF << (8 - bits)) & 0xFF
    return img.point([i & mask for i in range(256)] * len(img.getbands()))


def _solarize_add(img: Image.Image, add: int) -> Image.Image:
    # timm solarize_add: only pixels below 128 are brightened
    lut = [min(255, i + add) if i < 128 else i for i in range(256)]
    return img.point(lut * len(img.getbands()))


_PIXEL_OPS: dict[str, Callable[[Image.Image, float | int | None], Image.Image]] = {
    "AutoContrast": lambda img, _: ImageOps.autocontrast(img),
    "Equalize": lambda img, _: ImageOps.equalize(img),
    "Invert": lambda img, _: ImageOps.invert(img),
    "Posterize": _posterize,
    "PosterizeIncreasing": _posterize,
    "Solarize": ImageOps.solarize,
    "SolarizeIncreasing": ImageOps.solarize,
    "SolarizeAdd": _solarize_add,
    **{name: lambda img, f, e=e: e(img).enhance(f) for name, e in _ENHANCERS.items()},
    **{
        name + "Increasing": lambda img, f, e=e: e(img).enhance(f) for name, e in _ENHANCERS.items()
    },
}
ALL_OPS = frozenset(_PIXEL_OPS) | _GEOMETRIC


def sample_magnitude(
    rng: np.random.Generator, magnitude: float, std: float, max_magnitude: float = _LEVEL_DENOM
) -> float:
    """One op's magnitude: N(magnitude, std) (uniform on [0, magnitude] if std is inf, fixed if
    std is 0), clipped to [0, max_magnitude] as timm's AugmentOp does."""
    if std == math.inf:
        magnitude = rng.uniform(0.0, magnitude)
    elif std > 0:
        magnitude = rng.normal(magnitude, std)
    return float(min(max(magnitude, 0.0), max_magnitude))


def _negate(value: float, rng: np.random.Generator) -> float:
    # timm _randomly_negate: flip the sign with probability 1/2
    return -value if rng.random() > 0.5 else value


def level_to_arg(
    name: str, level: float, rng: np.random.Generator, translate_const: int = 100
) -> float | int | None:
    """timm's LEVEL_TO_ARG: the op argument at magnitude `level` (signs drawn from `rng`)."""
    frac = level / _LEVEL_DENOM
    if name in ("AutoContrast", "Equalize", "Invert"):
        return None
    if name == "Rotate":
        return _negate(frac * 30.0, rng)  # degrees in [-30, 30]
    if name in ("ShearX", "ShearY"):
        return _negate(frac * 0.3, rng)
    if name in ("TranslateXRel", "TranslateYRel"):
        return _negate(frac * 0.45, rng)  # timm translate_pct default 0.45 of the image size
    if name in ("TranslateX", "TranslateY"):
        return _negate(frac * float(translate_const), rng)  # pixels
    if name == "Posterize":
        return int(frac * 4)  # bits kept, 0..4
    if name == "PosterizeIncreasing":
        return 4 - int(frac * 4)  # bits kept, 4..0
    if name == "Solarize":
        return min(256, int(frac * 256))  # threshold
    if name == "SolarizeIncreasing":
        return 256 - min(256, int(frac * 256))
    if name == "SolarizeAdd":
        return min(128, int(frac * 110))
    if name in _ENHANCERS:
        return frac * 1.8 + 0.1  # enhance factor in [0.1, 1.9], 1.0 at level 5
    if name.endswith("Increasing") and name[: -len("Increasing")] in _ENHANCERS:
        return max(0.1, 1.0 + _negate(frac * 0.9, rng))  # 1.0 (identity) at level 0
    raise ValueError(f"unknown RandAugment op {name!r}; known: {sorted(ALL_OPS)}")


def _geometric(
    img: Image.Image, name: str, arg: float, fill: int | tuple[int, ...], resample: Image.Resampling
) -> Image.Image:
    if name == "Rotate":
        return img.rotate(arg, resample=resample, fillcolor=fill)
    w, h = img.size
    # PIL affine data (a, b, c, d, e, f): output (x, y) samples input (ax + by + c, dx + ey + f)
    data = {
        "ShearX": (1, arg, 0, 0, 1, 0),
        "ShearY": (1, 0, 0, arg, 1, 0),
        "TranslateX": (1, 0, arg, 0, 1, 0),
        "TranslateY": (1, 0, 0, 0, 1, arg),
        "TranslateXRel": (1, 0, arg * w, 0, 1, 0),
        "TranslateYRel": (1, 0, 0, 0, 1, arg * h),
    }[name]
    return img.transform(img.size, Image.Transform.AFFINE, data, resample, fillcolor=fill)


def _pil_fill(fill: tuple[int, ...], channels: int) -> int | tuple[int, ...]:
    if channels == 1:
        if len(fill) != 1:
            raise ValueError(f"fill {fill} has {len(fill)} values for a 1-channel image")
        return fill[0]
    if len(fill) not in (1, channels):
        raise ValueError(f"fill {fill} has {len(fill)} values for a {channels}-channel image")
    return tuple(fill) * (channels // len(fill))


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"expected a uint8 [H, W, 1 or 3] image, got {image.dtype} {image.shape}")


def apply_op(
    image: np.ndarray,
    name: str,
    arg: float | None = None,
    fill: tuple[int, ...] = (128,),
    interpolation: str = "bicubic",
) -> np.ndarray:
    """Apply one named op with an explicit argument (see `level_to_arg`) to a uint8 [H, W, C]."""
    _check_image(image)
    if interpolation not in _RESAMPLE:
        raise ValueError(f"interpolation {interpolation!r} not in {sorted(_RESAMPLE)}")
    img = _to_pil(image)
    if name in _GEOMETRIC:
        out = _geometric(img, name, arg, _pil_fill(fill, image.shape[-1]), _RESAMPLE[interpolation])
    elif name in _PIXEL_OPS:
        out = _PIXEL_OPS[name](img, arg)
    else:
        raise ValueError(f"unknown RandAugment op {name!r}; known: {sorted(ALL_OPS)}")
    return _from_pil(out)


@dataclasses.dataclass(frozen=True)
class RandAugment:
    """timm RandAugment: `num_ops` ops drawn uniformly with replacement, each applied with
    probability `prob` at a magnitude drawn by `sample_magnitude`."""

    num_ops: int = 2
    magnitude: float = 9.0
    magnitude_std: float = 0.5
    prob: float = 0.5
    fill: tuple[int, ...] = (128,)  # per-channel fill of geometric ops (timm: img_mean)
    translate_const: int = 100  # pixels at level 10 for absolute TranslateX/Y (in neither list)
    ops: tuple[str, ...] = RAND_INCREASING_OPS
    magnitude_max: float = _LEVEL_DENOM
    interpolation: str = "bicubic"  # or "bilinear", or "random" (a choice of the two per op)

    def __post_init__(self):
        unknown = [op for op in self.ops if op not in ALL_OPS]
        if unknown or not self.ops:
            raise ValueError(f"ops {self.ops} must be a non-empty subset of {sorted(ALL_OPS)}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} not in {_INTERPOLATIONS}")
        if self.num_ops < 0 or not 0.0 <= self.prob <= 1.0 or self.magnitude_std < 0:
            raise ValueError(f"bad RandAugment settings: {self}")
        if not self.fill or any(not 0 <= v <= 255 for v in self.fill):
            raise ValueError(f"fill {self.fill} must be 1 or C values in [0, 255]")

    def sample(self, rng: np.random.Generator) -> list[tuple[str, float | None, str]]:
        """The ops one call applies, as (name, arg, interpolation), drawn in timm's order."""
        ops = []
        # timm draws all ops first: np.random.choice(ops, num_layers, replace=True)
        for index in rng.choice(len(self.ops), size=self.num_ops, replace=True):
            name = self.ops[index]
            if self.prob < 1.0 and rng.random() > self.prob:
                continue
            level = sample_magnitude(rng, self.magnitude, self.magnitude_std, self.magnitude_max)
            arg = level_to_arg(name, level, rng, self.translate_const)
            interp = self.interpolation
            if name in _GEOMETRIC and interp == "random":
                interp = ("bilinear", "bicubic")[rng.integers(2)]
            ops.append((name, arg, interp))
        return ops

    def apply(self, image: np.ndarray, ops: list[tuple[str, float | None, str]]) -> np.ndarray:
        """`ops` (from `sample`) applied in turn to a uint8 [H, W, C] image."""
        _check_image(image)
        fill = _pil_fill(self.fill, image.shape[-1])
        img = _to_pil(image)
        for name, arg, interp in ops:
            if name in _GEOMETRIC:
                img = _geometric(img, name, arg, fill, _RESAMPLE[interp])
            else:
                img = _PIXEL_OPS[name](img, arg)
        return _from_pil(img)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """An image [H, W, C], or the frames [T, H, W, C] of a clip all with the same ops
        (VideoMAE `create_random_augment` transforms a clip's frames alike)."""
        ops = self.sample(rng)
        if image.ndim == 4:
            return np.stack([self.apply(frame, ops) for frame in image])
        return self.apply(image, ops)


_SPEC_PART = re.compile(r"([a-z]+)(\d.*)")
_ACCEPTED = "'rand' followed by any of -m<int> -n<int> -mstd<float> -mmax<int> -p<float> -inc1"


def parse(
    spec: str, image_size: int, mean: tuple[float, ...], interpolation: str = "bicubic"
) -> RandAugment | None:
    """timm config string ('rand-m9-mstd0.5-inc1') -> RandAugment; '' or 'none' -> None.

    `mean` is in [0, 1] and becomes the fill colour; `interpolation` is what the recipe passes
    to timm's create_transform (MAE: 'bicubic'; 'random' = timm's bilinear/bicubic choice).
    """
    if spec.strip().lower() in ("", "none"):
        return None
    parts = spec.split("-")
    if parts[0] != "rand":
        raise ValueError(f"augment spec {spec!r}: only RandAugment is supported, {_ACCEPTED}")
    # timm rand_augment_transform defaults: magnitude 10, 2 ops, prob 0.5, no noise, plain list
    kw: dict = {"magnitude": _LEVEL_DENOM, "num_ops": 2, "prob": 0.5, "magnitude_std": 0.0}
    increasing, seen = False, set()
    for part in parts[1:]:
        match = _SPEC_PART.fullmatch(part)
        key = match.group(1) if match else None
        if key not in ("m", "n", "mstd", "mmax", "p", "inc") or key in seen:
            raise ValueError(f"augment spec {spec!r}: bad or repeated part {part!r}; {_ACCEPTED}")
        seen.add(key)
        val = match.group(2)
        try:
            if key == "m":
                kw["magnitude"] = float(int(val))
            elif key == "n":
                kw["num_ops"] = int(val)
            elif key == "mstd":
                # timm: mstd > 100 means uniform sampling on [0, m]
                kw["magnitude_std"] = math.inf if float(val) > 100 else float(val)
            elif key == "mmax":
                kw["magnitude_max"] = float(int(val)) or _LEVEL_DENOM  # timm: mmax0 -> 10
            elif key == "p":
                kw["prob"] = float(val)
            elif val == "1":
                increasing = True
            else:
                # timm tests bool(val) on the string, so 'inc0' would silently mean inc1
                raise ValueError("inc must be 1 (omit it for timm's non-increasing op list)")
        except ValueError as e:
            raise ValueError(f"augment spec {spec!r}: bad part {part!r} ({e}); {_ACCEPTED}") from e
    fill = tuple(min(255, round(255 * m)) for m in mean)
    return RandAugment(
        fill=fill,
        # timm create_transform: translate_const = int(img_size * 0.45)
        translate_const=int(image_size * 0.45),
        ops=RAND_INCREASING_OPS if increasing else RAND_OPS,
        interpolation=interpolation,
        **kw,
    )
