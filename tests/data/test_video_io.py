"""Video reading: tiny videos made with PyAV whose frame i shows the bits of i as black or
white 8x8 blocks, so lossy coding cannot confuse neighbouring frames."""

import io
import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from mim_jax.data import convert_video, decode, video_io

H, W, BLOCK = 32, 48, 8  # 4 x 6 blocks: 24 bits
N = 45
CODECS = {  # container suffix -> (codec, pixel format)
    "mp4": ("libx264", "yuv420p"),
    "webm": ("libvpx", "yuv420p"),
    "avi": ("mpeg4", "yuv420p"),
    "mkv": ("mjpeg", "yuvj420p"),
}


def frame_image(i: int, h: int = H, w: int = W) -> np.ndarray:
    """uint8 [h, w, 3]: block b (row-major) is white when bit b of i is set."""
    rows, cols = h // BLOCK, w // BLOCK
    bits = (i >> np.arange(rows * cols)) & 1
    blocks = (bits.reshape(rows, cols) * 255).astype(np.uint8)
    image = np.kron(blocks, np.ones((BLOCK, BLOCK), np.uint8))
    return np.repeat(image[..., None], 3, -1)


def frame_ids(frames: np.ndarray) -> list[int]:
    """Inverse of `frame_image` for [T, h, w, 3] frames (any multiple-of-8 size)."""
    t, h, w, _ = frames.shape
    means = frames.mean(-1).reshape(t, h // BLOCK, BLOCK, w // BLOCK, BLOCK).mean((2, 4))
    bits = (means.reshape(t, -1) > 127).astype(np.int64)
    return (bits << np.arange(bits.shape[1])).sum(1).tolist()


def write_video(path: Path, n: int = N, gop: int = 10, h: int = H, w: int = W) -> Path:
    codec, pix_fmt = CODECS[path.suffix[1:]]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt, stream.gop_size = w, h, pix_fmt, gop
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(frame_image(i, h, w), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    return {suffix: write_video(root / f"v.{suffix}") for suffix in CODECS}


@pytest.fixture(scope="module")
def long_mp4(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("long") / "long.mp4", n=300, gop=10)


def write_frame_folder(directory: Path, n: int) -> Path:
    directory.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(frame_image(i)).save(directory / f"img_{i + 1:05d}.png")
    return directory


# ------------------------------------------------------------------ probe / read_frames
@pytest.mark.parametrize("suffix", sorted(CODECS))
def test_probe_counts_frames_and_size(videos, suffix):
    info = video_io.probe(videos[suffix])
    assert (info.num_frames, info.height, info.width) == (N, H, W)
    assert info.fps == pytest.approx(30)


@pytest.mark.parametrize("suffix", sorted(CODECS))
def test_read_frames_any_order_with_repeats(videos, suffix):
    indices = [30, 5, 5, 44, 0, 17, 30]
    frames = video_io.read_frames(videos[suffix], indices)
    assert frames.shape == (len(indices), H, W, 3) and frames.dtype == np.uint8
    assert frame_ids(frames) == indices


def test_read_frames_past_the_end_gives_the_last_frame(videos):
    frames = video_io.read_frames(videos["mp4"], np.array([N - 2, N, N + 100]))
    assert frame_ids(frames) == [N - 2, N - 1, N - 1]


def test_read_frames_seeks_instead_of_decoding_everything(long_mp4, monkeypatch):
    decoded = []

    def counting(container, stream):
        for frame in container.decode(stream):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(video_io, "_decoded", counting)
    clip = np.arange(16) * 4 + 236  # a 16 x 4 clip ending at the last frame
    assert frame_ids(video_io.read_frames(long_mp4, clip)) == clip.tolist()
    assert len(decoded) < 61 + 20  # the clip's span and less than two keyframe intervals


def test_read_frames_falls_back_to_the_start_when_a_seek_overshoots(videos, monkeypatch):
    calls = []
    real = video_io._decode_wanted

    def overshoot_once(path, wanted, seek):
        calls.append(seek)
        return None if seek else real(path, wanted, seek)

    monkeypatch.setattr(video_io, "_decode_wanted", overshoot_once)
    assert frame_ids(video_io.read_frames(videos["mp4"], [20, 3])) == [20, 3]
    assert calls == [True, False]


def test_random_bytes_are_a_video_error(tmp_path):
    bad = tmp_path / "noise.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    with pytest.raises(video_io.VideoError, match="noise.mp4"):
        video_io.read_frames(bad, [0])
    with pytest.raises(video_io.VideoError, match="noise.mp4"):
        video_io.probe(bad)


@pytest.mark.parametrize("suffix", ["mp4", "webm"])
def test_truncated_video_is_a_video_error(videos, tmp_path, suffix):
    cut = tmp_path / f"cut.{suffix}"
    data = videos[suffix].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(video_io.VideoError, match=f"cut.{suffix}"):
        video_io.read_frames(cut, [0, N - 1])


@pytest.mark.parametrize("suffix", ["mp4", "avi"])
def test_zero_frame_video_is_a_video_error(tmp_path, suffix):
    path = tmp_path / f"zero.{suffix}"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODECS[suffix][0], rate=30)
        stream.width, stream.height, stream.pix_fmt = W, H, CODECS[suffix][1]
        container.start_encoding()  # header and trailer, no frames
    with pytest.raises(video_io.VideoError, match=f"zero.{suffix}"):
        video_io.probe(path)
    with pytest.raises(video_io.VideoError, match=f"zero.{suffix}"):
        video_io.read_frames(path, [0])


def test_empty_and_missing_files_are_video_errors(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    for name in ("empty.mp4", "missing.mp4"):
        with pytest.raises(video_io.VideoError, match=name):
            video_io.read_video(tmp_path / name, [0])
    assert issubclass(video_io.VideoError, decode.DecodeError)


# ------------------------------------------------------------------ frame folders
def test_frame_folder_reads_frames_by_sorted_name(tmp_path):
    folder = write_frame_folder(tmp_path / "clip", 12)
    (folder / "notes.txt").write_text("not a frame")
    frames = video_io.read_video(folder, [11, 0, 3, 3, 40])
    assert frames.shape == (5, H, W, 3)
    assert frame_ids(frames) == [11, 0, 3, 3, 11]
    assert video_io.probe(folder) == video_io.VideoInfo(12, 0.0, H, W)


def test_empty_frame_folder_is_a_video_error(tmp_path):
    (tmp_path / "none").mkdir()
    with pytest.raises(video_io.VideoError, match="none"):
        video_io.read_frame_folder(tmp_path / "none", [0])


# ------------------------------------------------------------------ lists and sources
def test_parse_list_path_label_relative_to_the_list(tmp_path):
    (tmp_path / "train.csv").write_text("a/x.mp4 3\n\n/abs/y.mp4 0\nair drumming/z.mp4 7\n")
    paths, labels, counts = video_io.parse_list(str(tmp_path / "train.csv"))
    assert paths == [str(tmp_path / "a/x.mp4"), "/abs/y.mp4", str(tmp_path / "air drumming/z.mp4")]
    assert labels.tolist() == [3, 0, 7] and labels.dtype == np.int32
    assert counts is None


def test_parse_list_path_frames_label_with_commas_and_root(tmp_path):
    (tmp_path / "ssv2.csv").write_text("v1, 40, 2\nv2,33,1\n")
    paths, labels, counts = video_io.parse_list(str(tmp_path / "ssv2.csv"), root="/frames")
    assert paths == ["/frames/v1", "/frames/v2"]
    assert labels.tolist() == [2, 1] and counts.tolist() == [40, 33] and counts.dtype == np.int64


def test_parse_list_bad_line_names_the_line(tmp_path):
    (tmp_path / "l.txt").write_text("a.mp4 1\nb.mp4 cat\n")
    with pytest.raises(ValueError, match=r"l\.txt:2: expected 'path label'"):
        video_io.parse_list(str(tmp_path / "l.txt"))
    with pytest.raises(FileNotFoundError, match="absent.txt"):
        video_io.parse_list(str(tmp_path / "absent.txt"))


def test_video_list_source_gives_paths_and_labels(tmp_path):
    (tmp_path / "val.txt").write_text("a.mp4 4\nb.webm 1\n")
    source = video_io.VideoListSource(str(tmp_path / "val.txt"))
    assert len(source) == 2
    item = source[1]
    assert item["video"] == str(tmp_path / "b.webm") and os.path.isabs(item["video"])
    assert item["label"] == 1 and isinstance(item["label"], np.int32)
    assert "num_frames" not in item


def test_video_list_source_passes_frame_counts_and_empty_root(tmp_path):
    (tmp_path / "ssv2.txt").write_text("f/1 40 2\n")
    item = video_io.VideoListSource(str(tmp_path / "ssv2.txt"), root="")[0]
    assert item["video"] == str(tmp_path / "f/1") and item["num_frames"] == 40


# ------------------------------------------------------------------ ArrayRecord clips
def test_clip_indices_spread_and_clamp():
    spec = convert_video.ClipSpec(clips_per_video=3, num_frames=4, sampling_rate=2)
    np.testing.assert_array_equal(
        convert_video.clip_indices(27, spec), [[0, 2, 4, 6], [10, 12, 14, 16], [20, 22, 24, 26]]
    )
    np.testing.assert_array_equal(convert_video.clip_indices(5, spec)[0], [0, 2, 4, 4])


def test_convert_video_round_trip_skips_bad_videos(videos, tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all")
    lines = [f"{videos['mp4']} 0", f"{videos['webm']} 1", "bad.mp4 2", f"{videos['avi']} 3"]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    spec = convert_video.ClipSpec(clips_per_video=2, num_frames=4, sampling_rate=3, short_side=16)
    dst = tmp_path / "clips"
    (dst).mkdir()
    (dst / "dataset_info.json").write_text(json.dumps({"splits": {"val": {"files": []}}}))
    info = convert_video.convert(str(tmp_path / "train.txt"), None, str(dst), "train", spec, 0, 2)
    entry = info["splits"]["train"]
    assert entry["num_examples"] == 6 and entry["num_videos"] == 3
    assert [s["path"] for s in entry["skipped"]] == [str(tmp_path / "bad.mp4")]
    assert (entry["num_frames"], entry["sampling_rate"], entry["clips_per_video"]) == (4, 3, 2)
    assert "val" in json.loads((dst / "dataset_info.json").read_text())["splits"]  # merged

    source = video_io.ClipArrayRecordSource(str(dst), "train")
    assert len(source) == 6
    starts = convert_video.clip_indices(N, spec)[:, 0].tolist()  # [0, 36]
    for i in range(len(source)):
        item = source[i]
        frames = np.stack([decode.decode(f) for f in item["frames"]])
        assert frames.shape == (4, 16, 24, 3)  # short side 16, aspect kept
        assert item["label"] == [0, 1, 3][i // 2]
        big = np.stack([np.asarray(Image.fromarray(f).resize((W, H))) for f in frames])
        assert frame_ids(big) == [starts[i % 2] + 3 * t for t in range(4)]


def test_pack_clip_round_trips_through_msgpack():
    import msgpack

    record = msgpack.unpackb(video_io.pack_clip([b"a", b"b"], 5, "x.mp4", 1))
    assert record == {"frames": [b"a", b"b"], "label": 5, "path": "x.mp4", "clip": 1}


def test_clip_source_without_info_names_the_converter(tmp_path):
    with pytest.raises(FileNotFoundError, match="mim_jax.data.convert_video"):
        video_io.ClipArrayRecordSource(str(tmp_path), "train")


def test_resize_short_side_keeps_aspect():
    frame = np.zeros((240, 320, 3), np.uint8)
    assert convert_video.resize_short_side(frame, 120).shape == (120, 160, 3)
    assert convert_video.resize_short_side(frame, 0) is frame
    assert Image.open(io.BytesIO(convert_video.encode_jpeg(frame, 90))).size == (320, 240)
