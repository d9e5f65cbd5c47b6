import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from ml_collections import ConfigDict

from mim_jax import sharding


def test_mesh_fills_the_minus_one_axis():
    mesh = sharding.make_mesh(ConfigDict({"data": -1, "fsdp": 2}))
    assert dict(mesh.shape) == {"data": 4, "fsdp": 2}
    assert len(jax.devices()) == 8


@pytest.mark.parametrize("data,fsdp", [(3, -1), (2, 2), (-1, -1)])
def test_mesh_rejects_shapes_that_do_not_fit(data, fsdp):
    with pytest.raises(ValueError, match="config.mesh"):
        sharding.make_mesh(ConfigDict({"data": data, "fsdp": fsdp}))


def test_fsdp_spec_shards_the_largest_divisible_dim():
    assert sharding.fsdp_spec((768, 3072), 4, min_size=1) == P(None, "fsdp")
    assert sharding.fsdp_spec((3072, 6), 4, min_size=1) == P("fsdp", None)
    assert sharding.fsdp_spec((7, 5), 4, min_size=1) == P()  # nothing divisible
    assert sharding.fsdp_spec((768,), 4, min_size=10_000) == P()  # small: replicated
    assert sharding.fsdp_spec((768, 768), 1, min_size=1) == P()  # no fsdp axis


def test_global_batch_splits_rows_over_all_devices():
    mesh = sharding.make_mesh(ConfigDict({"data": 4, "fsdp": 2}))
    local = {"image": np.arange(16 * 3).reshape(16, 3)}
    out = sharding.global_batch(local, mesh)["image"]
    assert out.shape == (16, 3) and len(out.addressable_shards) == 8
    assert {s.data.shape for s in out.addressable_shards} == {(2, 3)}
    np.testing.assert_array_equal(sharding.to_host(out), local["image"])
