"""Decoding encoded images of every common mode to uint8 RGB / grey."""

import io

import numpy as np
import pytest
from PIL import Image

from mim_jax.data import decode


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def _rgb(h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 4, y * 5, (x + y) * 2], -1) % 256
    return (base + rng.integers(0, 20, (h, w, 3))).clip(0, 255).astype(np.uint8)


def test_jpeg_decodes_like_pil_at_full_size():
    data = encode(Image.fromarray(_rgb()), "JPEG", quality=95)
    ours = decode.decode(data)
    pil = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert ours.shape == (48, 64, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - pil).max() <= 1  # same libjpeg-turbo, same IDCT


def test_jpeg_dct_scaling_returns_the_smallest_size_above_the_minimum():
    data = encode(Image.fromarray(np.repeat(np.repeat(_rgb(), 8, 0), 8, 1)), "JPEG")  # 384x512
    assert decode.size(data) == (384, 512)
    assert decode.decode(data, min_size=(90, 100)).shape == (96, 128, 3)  # 1/4
    h, w, _ = decode.decode(data, min_size=(200, 10)).shape  # libjpeg-turbo scales by k/8
    assert 200 <= h < 384 and w * 3 == h * 4
    assert decode.decode(data, min_size=(0, 0)).shape == (384, 512, 3)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "1"])
def test_every_mode_becomes_rgb(mode):
    image = Image.fromarray(_rgb()).convert(mode)
    fmt = {"L": "JPEG", "CMYK": "TIFF"}.get(mode, "PNG")
    data = encode(image, fmt)
    out = decode.decode(data)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_cmyk_jpeg_matches_pil():
    image = Image.fromarray(_rgb()).convert("CMYK")
    data = encode(image, "JPEG", quality=95)
    np.testing.assert_array_equal(
        decode.decode(data), np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    )


def test_16_bit_grey_is_rescaled_not_clipped():
    ramp = (np.arange(64, dtype=np.uint16) * 1040)[None].repeat(4, 0)  # 0 .. 65520
    data = encode(Image.fromarray(ramp), "PNG")
    out = decode.decode(data)
    np.testing.assert_array_equal(out[..., 0], np.round(ramp / 257.0).astype(np.uint8))
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_grey_output_for_one_channel_models():
    out = decode.decode(encode(Image.fromarray(_rgb()), "PNG"), channels=1)
    assert out.shape == (48, 64, 1)


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", None],
    ids=["empty", "garbage", "truncated-jpeg"],
)
def test_bad_data_raises_decode_error(data):
    if data is None:
        full = encode(Image.fromarray(_rgb()), "JPEG")
        data = full[: len(full) // 2]
    with pytest.raises(decode.DecodeError):
        decode.decode(data)
