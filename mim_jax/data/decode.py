"""Decoding encoded images (bytes) to uint8 RGB / grey arrays.

JPEGs go through libjpeg-turbo (simplejpeg) and can be decoded at 1/2, 1/4 or 1/8 size
in the DCT when the caller needs fewer pixels (a small crop upscaled, or a big image
shrunk): the decoder then does a fraction of the work. Other formats go through PIL.
Every mode ends as RGB (or grey): palette, grey+alpha, RGBA (alpha dropped, as
torchvision's `.convert("RGB")`), CMYK (incl. Adobe-inverted JPEGs) and 16-bit images.
"""

import io

import numpy as np
import simplejpeg
from PIL import Image

_JPEG_MAGIC = b"\xff\xd8"
_FAST_JPEG = ("Gray", "YCbCr", "RGB")  # libjpeg colourspaces simplejpeg decodes to RGB exactly


class DecodeError(ValueError):
    """An undecodable, truncated or empty image."""


def size(data: bytes) -> tuple[int, int]:
    """(height, width) from the header only."""
    if not data:
        raise DecodeError("empty file")
    try:
        if data[:2] == _JPEG_MAGIC:
            h, w, _, _ = simplejpeg.decode_jpeg_header(data)
            return h, w
        w, h = Image.open(io.BytesIO(data)).size
        return h, w
    except Exception as e:
        raise DecodeError(f"unreadable image header: {e}") from e


def decode(data: bytes, channels: int = 3, min_size: tuple[int, int] = (0, 0)) -> np.ndarray:
    """uint8 [H', W', channels]. For JPEGs, H' x W' may be the full size reduced by 2, 4
    or 8 while staying >= `min_size` (height, width); other formats come at full size."""
    if not data:
        raise DecodeError("empty file")
    try:
        if data[:2] == _JPEG_MAGIC:
            _, _, colourspace, _ = simplejpeg.decode_jpeg_header(data)
            if colourspace in _FAST_JPEG:
                out = simplejpeg.decode_jpeg(
                    data,
                    colorspace="GRAY" if channels == 1 else "RGB",
                    min_height=min_size[0],
                    min_width=min_size[1],
                )
                return out if out.ndim == 3 else out[..., None]
        image = Image.open(io.BytesIO(data))
        if image.format == "JPEG" and max(min_size) > 0:
            image.draft(image.mode, (max(min_size[1], 1), max(min_size[0], 1)))  # DCT scaling
        image.load()
        return to_array(image, channels)
    except DecodeError:
        raise
    except Exception as e:  # PIL and libjpeg raise many types on damaged data
        raise DecodeError(str(e) or type(e).__name__) from e


def to_array(image: Image.Image, channels: int = 3) -> np.ndarray:
    """A PIL image of any mode -> uint8 [H, W, channels]."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit (PIL opens 16-bit grey PNG/TIFF as I;16 or I) and float grey: rescale to
        # 8 bits; PIL's own convert would clip everything above 255 to white
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode != "F" else (1.0 if arr.max(initial=0) <= 1 else 255.0)
        grey = np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        image = Image.fromarray(grey, "L")
    target = "L" if channels == 1 else "RGB"
    if image.mode != target:
        image = image.convert(target)
    arr = np.asarray(image)
    return arr[..., None] if arr.ndim == 2 else arr
