import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

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


def _official_block_mask(rng, grid, num, min_patches=16, retry=False):
    """BEiT masking_generator.py `MaskingGenerator` in NumPy: blocks of area U[min, budget] and
    log-uniform aspect, each kept if it adds 1..budget patches; stop after 10 failed tries in a
    row (BEiT) or keep trying until exactly `num` (CAE, `retry=True`)."""
    height, width = grid
    mask = np.zeros(grid, bool)
    count = 0
    while count < num:
        budget, added = num - count, 0
        for _ in range(10):
            area = min_patches + (budget - min_patches) * rng.random()  # random.uniform
            aspect = np.exp(rng.uniform(np.log(0.3), np.log(1 / 0.3)))
            h, w = round(np.sqrt(area * aspect)), round(np.sqrt(area / aspect))
            if h < height and w < width:
                top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
                block = mask[top : top + h, left : left + w]
                added = h * w - int(block.sum())
                if 0 < added <= budget:
                    block[...] = True
                    break
                added = 0
        if added == 0 and not retry:
            break
        count += added
    return mask


def _block_masks(key, batch, grid, num, **kw):
    fn = jax.jit(lambda k: masking.block_mask_batch(k, batch, grid, num, **kw))
    return np.asarray(fn(key)).reshape(batch, *grid)


@pytest.mark.parametrize("exact", [False, True])
def test_block_mask_statistics_match_the_official_loop(exact):
    n, num = 1000, 75  # BEiT's default: 75 of 14x14, min 16 per block
    ours = _block_masks(jax.random.key(0), n, (14, 14), num, exact=exact)
    rng = np.random.default_rng(0)
    ref = np.stack([_official_block_mask(rng, (14, 14), num, retry=exact) for _ in range(n)])
    # BEiT stops a few short in ~1/3 of draws; CAE always reaches the count
    short_ours, short_ref = num - ours.sum((1, 2)), num - ref.sum((1, 2))
    assert abs(short_ours.mean() - short_ref.mean()) < 0.15
    assert abs((short_ours == 0).mean() - (short_ref == 0).mean()) < 0.08
    assert (short_ref == 0).mean() == 1.0 if exact else 0.5 < (short_ref == 0).mean() < 0.8
    # block sizes and placement: 4-connected regions and the columns touched agree
    regions_ours = [ndimage.label(m)[1] for m in ours]
    regions_ref = [ndimage.label(m)[1] for m in ref]
    np.testing.assert_allclose(np.mean(regions_ours), np.mean(regions_ref), rtol=0.07)
    np.testing.assert_allclose(ours.any(1).sum(1).mean(), ref.any(1).sum(1).mean(), rtol=0.03)
    # where blocks land: how often each row and each column is masked (centre ~0.5, edge ~0.13)
    np.testing.assert_allclose(ours.mean((0, 2)), ref.mean((0, 2)), atol=0.045)
    np.testing.assert_allclose(ours.mean((0, 1)), ref.mean((0, 1)), atol=0.045)


@pytest.mark.parametrize(
    ("grid", "num", "kw"),
    [
        ((14, 14), 98, {}),  # CAE base: 50% of 196
        ((14, 14), 78, {"min_patches": 15}),  # MaskFeat ViT-B: round(0.4 * 196), min 78 // 5
        ((8, 12), 40, {"min_patches": 4, "max_patches": 10}),
        ((4, 4), 15, {}),  # blocks must be < 4 high and wide: often needs the random fill
        ((4, 4), 0, {}),
    ],
)
def test_block_mask_exact_count(grid, num, kw):
    masks = _block_masks(jax.random.key(1), 16, grid, num, **kw)
    np.testing.assert_array_equal(masks.sum((1, 2)), num)


@pytest.mark.parametrize(("aspect", "shape"), [(1.0, (4, 4)), (4.0, (8, 2)), (0.25, (2, 8))])
def test_a_single_block_has_the_drawn_area_and_aspect(aspect, shape):
    # area 16 (min = budget), aspect h/w fixed: h = round(sqrt(16 a)), w = round(sqrt(16 / a))
    kw = {"min_aspect": aspect, "max_aspect": aspect, "exact": False}
    masks = _block_masks(jax.random.key(2), 32, (14, 14), 16, **kw)
    corners = set()
    for m in masks:
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        assert (rows.size, cols.size) == shape and m.sum() == 16  # one filled rectangle
        corners.add((rows[0], cols[0]))
    assert len(corners) > 16  # placed at random


def test_blocks_must_be_narrower_and_lower_than_the_grid():
    # every draw is 2 x 8 here, as wide as the grid: BEiT rejects it (w < width), so exact=False
    # masks nothing and exact=True masks the 16 at random once its tries run out
    kw = {"min_aspect": 0.25, "max_aspect": 0.25, "max_attempts": 50}
    none = _block_masks(jax.random.key(2), 4, (14, 8), 16, exact=False, **kw)
    assert not none.any()
    filled = _block_masks(jax.random.key(2), 4, (14, 8), 16, exact=True, **kw)
    np.testing.assert_array_equal(filled.sum((1, 2)), 16)


def test_block_masking_spec_is_jittable_and_per_sample():
    fn = jax.jit(lambda k: masking.block_masking(k, 8, (14, 14), 98))
    spec = fn(jax.random.key(3))
    assert spec.ids_keep.shape == (8, 98) and spec.ids_restore.shape == (8, 196)
    np.testing.assert_array_equal(np.asarray(spec.mask).sum(1), 98)
    np.testing.assert_array_equal(np.diff(np.asarray(spec.ids_keep), axis=1) > 0, True)  # raster
    visible = np.take_along_axis(np.asarray(spec.mask), np.asarray(spec.ids_keep), axis=1)
    np.testing.assert_array_equal(visible, 0.0)
    # row b is block_mask of the b-th split key
    single = jax.jit(lambda k: masking.block_mask(k, (14, 14), 98))
    np.testing.assert_array_equal(spec.mask[5], single(jax.random.split(jax.random.key(3), 8)[5]))
    assert len({tuple(m) for m in np.asarray(spec.mask)}) == 8  # independent samples
    assert not np.array_equal(fn(jax.random.key(4)).mask, spec.mask)


def test_block_mask_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_masked"):
        masking.block_mask(jax.random.key(0), (4, 4), 17)
    with pytest.raises(ValueError, match="aspect"):
        masking.block_mask(jax.random.key(0), (4, 4), 8, min_aspect=2.0, max_aspect=1.0)
    with pytest.raises(ValueError, match="exact"):
        masking.block_masking(jax.random.key(0), 2, (4, 4), 8, exact=False)


@pytest.mark.parametrize(
    ("image_size", "mask_patch", "model_patch", "ratio", "cells"),
    [
        ((224, 224), 32, 16, 0.6, 30),  # ceil(49 * 0.6) = ceil(29.4): 120 of 196 tokens
        ((192, 192), 32, 4, 0.6, 22),  # SimMIM default: ceil(36 * 0.6) = ceil(21.6)
        ((160, 160), 32, 16, 0.5, 13),  # ceil(12.5), where int() would give 12
        ((64, 96), 16, 8, 0.25, 6),  # non-square: 4 x 6 cells
    ],
)
def test_simmim_mask_picks_ceil_cells_and_fills_them(
    image_size, mask_patch, model_patch, ratio, cells
):
    fn = jax.jit(lambda k: masking.simmim_mask(k, 6, image_size, mask_patch, model_patch, ratio))
    masks = np.asarray(fn(jax.random.key(5)))
    rows, cols = image_size[0] // model_patch, image_size[1] // model_patch
    scale = mask_patch // model_patch
    assert masks.shape == (6, rows * cols) and masks.dtype == bool
    blocks = masks.reshape(6, rows // scale, scale, cols // scale, scale)
    assert (blocks == blocks[:, :, :1, :, :1]).all()  # constant on each scale x scale cell
    np.testing.assert_array_equal(blocks[:, :, 0, :, 0].sum((1, 2)), cells)
    np.testing.assert_array_equal(masks.sum(1), cells * scale**2)
    assert len({tuple(m) for m in masks}) == 6  # per-sample


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (((200, 224), 32, 16, 0.6), r"image_size \(200, 224\) .* mask_patch_size 32"),
        (((224, 224), 32, 12, 0.6), "mask_patch_size 32 .* model_patch_size 12"),
        (((224, 224), 32, 16, 1.5), "mask_ratio"),
    ],
)
def test_simmim_mask_rejects_bad_sizes(args, match):
    with pytest.raises(ValueError, match=match):
        masking.simmim_mask(jax.random.key(0), 2, *args)


def test_scatter_tokens_inverts_gather_tokens_on_the_gathered_positions():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 3))
    ids = jnp.array([[4, 0, 2], [1, 5, 3]])
    full = masking.scatter_tokens(masking.gather_tokens(x, ids), ids, 6)
    np.testing.assert_array_equal(masking.gather_tokens(full, ids), masking.gather_tokens(x, ids))
    np.testing.assert_array_equal(full[0, jnp.array([1, 3, 5])], 0.0)
