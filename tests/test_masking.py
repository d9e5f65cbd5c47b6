import jax
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
