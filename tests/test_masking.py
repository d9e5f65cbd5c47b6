import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mim_jax import masking


def test_exact_keep_count_and_mask_agree():
    spec = masking.random_masking(jax.random.PRNGKey(0), 4, 49, 0.75)
    keep = int(49 * 0.25)  # 12, as int(L * (1 - ratio))
    assert spec.ids_keep.shape == (4, keep)
    np.testing.assert_array_equal(spec.mask.sum(axis=1), 49 - keep)
    for b in range(4):  # the kept ids are exactly the unmasked positions
        assert set(np.asarray(spec.ids_keep[b])) == set(np.flatnonzero(spec.mask[b] == 0))


def test_ids_restore_inverts_the_shuffle():
    noise = jax.random.uniform(jax.random.PRNGKey(1), (3, 16))
    spec = masking.mask_from_noise(noise, 0.5)
    ids_shuffle = np.argsort(np.asarray(noise), axis=1)
    np.testing.assert_array_equal(
        np.take_along_axis(ids_shuffle, np.asarray(spec.ids_restore), 1),
        np.tile(np.arange(16), (3, 1)),
    )


def test_keeps_the_smallest_noise_like_the_official_code():
    noise = np.array([[0.9, 0.1, 0.5, 0.3]])
    spec = masking.mask_from_noise(noise, 0.5)
    np.testing.assert_array_equal(spec.ids_keep, [[1, 3]])
    np.testing.assert_array_equal(spec.mask, [[1, 0, 1, 0]])


def test_samples_are_masked_independently():
    spec = masking.random_masking(jax.random.PRNGKey(2), 8, 64, 0.75)
    masks = {tuple(np.asarray(m)) for m in spec.mask}
    assert len(masks) == 8


def test_gather_tokens():
    x = np.arange(2 * 4 * 3).reshape(2, 4, 3)
    out = masking.gather_tokens(x, np.array([[3, 0], [1, 2]]))
    np.testing.assert_array_equal(out, [[x[0, 3], x[0, 0]], [x[1, 1], x[1, 2]]])


@pytest.mark.parametrize("ratio", [-0.1, 1.0])
def test_rejects_bad_ratio(ratio):
    with pytest.raises(ValueError, match="mask_ratio"):
        masking.num_kept(16, ratio)


def test_mask_from_bool_keeps_visible_tokens_in_order():
    mask = np.array([[True, False, True, False, False, True]])
    spec = masking.mask_from_bool(mask, 3)
    np.testing.assert_array_equal(spec.ids_keep, [[1, 3, 4]])
    # ids_restore puts [visible..., masked...] back in place
    shuffled = np.concatenate([[1, 3, 4], [0, 2, 5]])
    np.testing.assert_array_equal(shuffled[np.asarray(spec.ids_restore[0])], np.arange(6))


@pytest.mark.parametrize("grid", [(8, 14, 14), (4, 6, 6), (2, 16, 16)])
def test_tube_mask_is_one_spatial_mask_repeated_over_time(grid):
    t, h, w = grid
    spec = masking.tube_masking(jax.random.PRNGKey(3), 5, grid, 0.9)
    mask = np.asarray(spec.mask).reshape(5, t, h * w)
    assert (mask == mask[:, :1]).all()  # identical at every temporal position
    masked_per_frame = int(0.9 * h * w)  # TubeMaskingGenerator: 176 of 196 at 14x14
    np.testing.assert_array_equal(mask[:, 0].sum(axis=1), masked_per_frame)
    assert spec.ids_keep.shape == (5, t * (h * w - masked_per_frame))
    assert len({tuple(m[0]) for m in mask}) == 5  # per-sample masks


def _official_running_cell(grid, ratio):
    """The 4 running-cell decoder masks built the way VideoMAE V2's Cell class does it:
    a queue [1]*m + [0]*(4-m) read at a pointer that runs one step before every frame."""
    t, h, w = grid
    m = int(4 * ratio)
    queue = np.hstack([np.ones(m), np.zeros(4 - m)])
    maps = []
    for start in range(4):
        ptr, frames = start, []
        for _ in range(t):
            ptr += 1
            unit = queue[(np.arange(4) + ptr) % 4].reshape(2, 2)
            frames.append(np.tile(unit, [h // 2, w // 2]).flatten())
        maps.append(np.stack(frames).reshape(-1))
    return np.stack(maps).astype(bool)


@pytest.mark.parametrize("grid", [(8, 14, 14), (8, 16, 16), (3, 4, 6), (1, 2, 2)])
def test_running_cell_patterns_match_their_definition(grid):
    ours = masking.running_cell_patterns(grid, 0.5)
    np.testing.assert_array_equal(ours, _official_running_cell(grid, 0.5))
    t, h, w = grid
    frames = ours.reshape(4, t, h, w)
    assert (frames.reshape(4, t, -1).sum(-1) == h * w // 2).all()  # half of each frame
    # each 2x2 cell is the same at every cell position and advances by one per frame
    cells = frames.reshape(4, t, h // 2, 2, w // 2, 2)
    assert (cells == cells[:, :, :1, :, :1, :]).all()
    if t > 4:
        np.testing.assert_array_equal(frames[:, 4], frames[:, 0])  # period 4 in time


def test_running_cell_mask_draws_one_of_the_patterns_per_sample():
    grid = (4, 4, 4)
    masks = np.asarray(masking.running_cell_mask(jax.random.PRNGKey(0), 32, grid))
    patterns = {tuple(p) for p in masking.running_cell_patterns(grid)}
    assert {tuple(m) for m in masks} == patterns  # all 4 drawn, nothing else


def test_running_cell_rejects_odd_grids():
    with pytest.raises(ValueError, match="even spatial grid"):
        masking.running_cell_patterns((2, 3, 4))


def test_time_freq_mask_hides_whole_rows_and_columns_in_the_requested_counts():
    key_t, key_f = jax.random.split(jax.random.key(0))
    noise_t, noise_f = jax.random.uniform(key_t, (4, 64)), jax.random.uniform(key_f, (4, 8))
    spec = masking.time_freq_masking(noise_t, noise_f, 0.7, 0.3)
    grid = np.asarray(spec.mask).reshape(4, 64, 8).astype(bool)
    for g in grid:
        full_rows = g.all(axis=1).sum()
        full_cols = g.all(axis=0).sum()
        assert full_rows == 64 - int(64 * 0.3) and full_cols == 8 - int(8 * 0.7)  # 45, 3
        assert (~g).sum() == 19 * 5  # visible = kept rows x kept columns
    assert spec.ids_keep.shape == (4, 95)
    np.testing.assert_array_equal(np.diff(np.asarray(spec.ids_keep), axis=1) > 0, True)  # raster
    visible = np.take_along_axis(np.asarray(spec.mask), np.asarray(spec.ids_keep), axis=1)
    np.testing.assert_array_equal(visible, 0.0)
    restored = np.take_along_axis(
        np.argsort(np.asarray(spec.ids_restore), axis=1), np.asarray(spec.ids_restore), axis=1
    )
    np.testing.assert_array_equal(restored, np.tile(np.arange(512), (4, 1)))


def test_time_freq_mask_masks_the_largest_noise():
    noise_t = jnp.asarray([[0.1, 0.9, 0.5, 0.2]])
    noise_f = jnp.asarray([[0.3, 0.1]])
    mask, keep = masking.time_freq_mask(noise_t, noise_f, 0.5, 0.5)
    assert keep == 2
    expected = np.array([[1, 0], [1, 1], [1, 1], [1, 0]], bool)  # rows 1, 2 and column 0
    np.testing.assert_array_equal(np.asarray(mask).reshape(4, 2), expected)
