"""Temporal sampling and crops as the official video loaders do them."""

import numpy as np
import pytest

from mim_jax.data import video_transforms as vt


def test_strided_clip_in_a_long_video():
    np.testing.assert_array_equal(vt.strided_clip(10, 300, 16, 4), 10 + 4 * np.arange(16))


@pytest.mark.parametrize(
    "length, expected",
    [  # VideoMAE `_video_TSN_decord_batch_loader`: stop advancing past length - 2
        (30, [0, 4, 8, 12, 16, 20, 24, 28] + [28] * 8),
        (17, [0, 4, 8, 12] + [12] * 12),
    ],
)
def test_strided_clip_in_a_short_video_repeats_the_last_frame_reached(length, expected):
    np.testing.assert_array_equal(vt.strided_clip(0, length, 16, 4), expected)


def test_random_clip_start_covers_the_official_range():
    rng = np.random.default_rng(0)
    starts = {int(vt.random_clip(rng, 70, 16, 4)[0]) for _ in range(400)}
    assert starts == set(range(0, 70 - 64 + 1))  # randint(N - T * rate + 1)


def test_fps_clip_matches_mae_st_temporal_sampling():
    """linspace(start, start + 4*16*fps/30 - 1, 16), truncated: stride 4.2 at 30 fps."""

    class Zero:  # rng.uniform(0, delta) -> 0
        def uniform(self, low, high):
            return low

    clip = vt.random_clip_fps(Zero(), 300, 16, 4, fps=30.0, target_fps=30.0)
    np.testing.assert_array_equal(
        clip, [0, 4, 8, 12, 16, 21, 25, 29, 33, 37, 42, 46, 50, 54, 58, 63]
    )
    short = vt.random_clip_fps(Zero(), 40, 16, 4, fps=30.0, target_fps=30.0)
    assert short[-1] == 39 and (np.diff(short) >= 0).all()  # clamped to the video
    slow = vt.random_clip_fps(Zero(), 300, 16, 4, fps=15.0, target_fps=30.0)
    assert slow[-1] == 31  # half the frames at half the fps: the same 2.1 s


def test_multiscale_crop_box_uses_the_official_sizes_and_13_offsets():
    rng = np.random.default_rng(0)
    h, w, size = 240, 320, 224
    sides = [224 if abs(int(240 * s) - 224) < 3 else int(240 * s) for s in (1, 0.875, 0.75, 0.66)]
    grid = {
        (0, 0),
        (4, 0),
        (0, 4),
        (4, 4),
        (2, 2),
        (0, 2),
        (4, 2),
        (2, 4),
        (2, 0),
        (1, 1),
        (3, 1),
        (1, 3),
        (3, 3),
    }  # fill_fix_offset(more_fix_crop=True), in steps
    seen = set()
    for _ in range(3000):
        top, left, ch, cw = vt.multiscale_crop_box(rng, h, w, size)
        i, j = sides.index(ch), sides.index(cw)
        assert abs(i - j) <= 1  # max_distort 1
        hs, ws = (h - ch) // 4, (w - cw) // 4
        if hs and ws:
            assert top % hs == 0 and left % ws == 0
            assert (left // ws, top // hs) in grid
            seen.add((left // ws, top // hs))
    assert seen == grid


def video_element(length=40, size=32, label=3):
    frames = np.zeros((length, size, size, 1), np.uint8)
    frames[:, :, :, 0] = np.arange(length, dtype=np.uint8)[:, None, None] * 5
    return {"video": frames, "label": np.int32(label)}


def test_train_transform_gives_num_samples_clips_of_one_video():
    t = vt.VideoTrainTransform(8, 2, size=16, channels=1, num_samples=3, crop="rrc", flip=True)
    out = t.random_map(video_element(), np.random.default_rng(0))
    assert out["image"].shape == (3, 8, 16, 16, 1) and out["image"].dtype == np.uint8
    np.testing.assert_array_equal(out["label"], [3, 3, 3])
    frame_ids = out["image"][:, :, 8, 8, 0] // 5  # each frame is flat: its value is its index
    assert (np.diff(frame_ids, axis=1) == 2).all()  # sampling rate 2
    assert len({tuple(f) for f in frame_ids}) > 1  # independent temporal windows


def test_shared_frames_give_the_same_window_to_every_repeat():
    t = vt.VideoTrainTransform(8, 2, size=16, channels=1, num_samples=4, share_frames=True)
    out = t.random_map(video_element(), np.random.default_rng(0))
    frame_ids = out["image"][:, :, 8, 8, 0]
    assert (frame_ids == frame_ids[:1]).all()


def test_too_short_video_becomes_an_error_element():
    t = vt.VideoTrainTransform(16, 2, size=16, channels=1)
    out = t.random_map(video_element(length=10), np.random.default_rng(0))
    assert "too short" in out["error"]


def test_eval_transform_takes_the_centre_clip():
    t = vt.VideoEvalTransform(8, 2, size=16, channels=1)
    out = t.map(video_element(length=40))
    assert out["image"].shape == (8, 16, 16, 1)
    np.testing.assert_array_equal(out["image"][:, 8, 8, 0] // 5, 12 + 2 * np.arange(8))


def test_flatten_samples_makes_repeats_batch_rows():
    batch = {"image": np.zeros((2, 3, 4, 5, 5, 1)), "label": np.arange(6).reshape(2, 3)}
    out = vt.flatten_samples(batch)
    assert out["image"].shape == (6, 4, 5, 5, 1)
    np.testing.assert_array_equal(out["label"], np.arange(6))


def test_span_clip_is_videomaes_kinetics_fine_tuning_sampler():
    # kinetics.py loadvideo_decord (train): end ~ randint(64, len), linspace over the span
    rng, ref = np.random.default_rng(3), np.random.default_rng(3)
    clip = vt.span_clip(rng, 300, 16, 4)
    end = int(ref.integers(64, 300))
    expected = np.clip(np.linspace(end - 64, end, 16), end - 64, end - 1).astype(np.int64)
    np.testing.assert_array_equal(clip, expected)
    assert not (np.diff(clip) == 4).all()  # 64 / 15 apart, not exactly every 4th frame


def test_span_clip_of_a_short_video_pads_with_its_last_frame():
    # 40 frames <= 64: linspace(0, 40, 40 // 4 = 10), then 6 x 40, clipped to 39
    expected = np.clip(np.r_[np.linspace(0, 40, 10), [40] * 6], 0, 39).astype(np.int64)
    np.testing.assert_array_equal(vt.span_clip(np.random.default_rng(0), 40, 16, 4), expected)


def test_segment_clip_takes_one_frame_per_segment():
    rng = np.random.default_rng(0)
    for _ in range(20):
        clip = vt.segment_clip(rng, 100, 16)  # 16 segments of 6 frames (100 // 16)
        np.testing.assert_array_equal(clip // 6, np.arange(16))
    assert (vt.segment_clip(rng, 10, 16) == 0).all()  # shorter than 16 frames: frame 0


def test_kinetics_test_clips_spread_over_the_whole_video():
    # 5 clips of 16 frames every 4th of a 300-frame video: 75 strided frames, step 59 / 4
    clips = vt.view_clips(300, 16, 4, 5, "span")
    starts = [int(c[0]) for c in clips]
    assert starts == [4 * int(k * 59 / 4) for k in range(5)]
    assert all((np.diff(c) == 4).all() for c in clips)
    assert clips[-1][-1] == 296  # the last clip ends at the last strided frame


def test_ssv2_test_clips_are_the_segment_starts_and_midpoints():
    clips = vt.view_clips(64, 16, 2, 2, "segments")  # tick = 4 frames
    np.testing.assert_array_equal(clips[0], 4 * np.arange(16))
    np.testing.assert_array_equal(clips[1], 4 * np.arange(16) + 2)


def test_test_crops_run_along_the_long_side():
    frames = np.zeros((2, 20, 40, 1), np.uint8)
    frames[..., 0] = np.arange(40, dtype=np.uint8)[None, None, :] * 6  # value = 6 x column
    crops = vt.view_crops(frames, 10, 3)  # short side 20 -> 10: [2, 10, 20, 1]; step 5
    assert [c.shape for c in crops] == [(2, 10, 10, 1)] * 3
    left_edges = [int(c[0, 5, 0, 0]) for c in crops]  # columns 0, 5, 10 of the half-size
    assert left_edges[0] < left_edges[1] < left_edges[2]
    np.testing.assert_allclose(left_edges, [6, 66, 126], atol=4)  # 2 x col x 6, + blur


def test_eval_transform_gives_every_view_clip_major():
    t = vt.VideoEvalTransform(4, 2, size=16, channels=1, num_clips=3, num_crops=2)
    element = video_element(length=40)
    element["video"] = np.repeat(element["video"], 2, axis=2)[:, :16]  # 32 x 16 frames
    out = t.map(element)
    assert out["image"].shape == (6, 4, 16, 16, 1)
    frame_ids = out["image"][:, :, 8, 8, 0] // 5
    starts = [int(k * (20 - 4) / 2) * 2 for k in range(3)]  # 20 strided frames, step 8
    for view in range(6):
        np.testing.assert_array_equal(frame_ids[view], starts[view // 2] + 2 * np.arange(4))


def test_train_transform_randaugments_every_frame_of_a_clip_alike():
    from mim_jax.data import randaugment

    aug = randaugment.parse("rand-m9-n4-mstd0.5", 16, (0.5,))
    t = vt.VideoTrainTransform(4, 1, size=16, channels=1, crop="rrc", randaugment=aug)
    element = {"video": np.repeat(video_element(length=8)["video"][:1] + 90, 8, 0), "label": 1}
    for seed in range(5):  # identical frames stay identical: the same ops on each
        out = t.random_map(element, np.random.default_rng(seed))["image"][0]
        assert all((frame == out[0]).all() for frame in out)
