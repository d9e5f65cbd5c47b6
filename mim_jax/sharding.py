"""Device mesh, FSDP parameter sharding by rule, and global batch assembly."""

from collections.abc import Sequence

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXES = ("data", "fsdp")
BATCH_SPEC = P(AXES)  # the batch dimension is split over every device


def make_mesh(cfg: ml_collections.ConfigDict, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ("data", "fsdp") mesh; a -1 size takes the devices the other axis leaves."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = [cfg.data, cfg.fsdp]
    if sizes.count(-1) > 1:
        raise ValueError("config.mesh: at most one of data/fsdp may be -1")
    known = int(np.prod([s for s in sizes if s != -1]))
    if known <= 0 or len(devices) % known:
        raise ValueError(
            f"config.mesh data={cfg.data} fsdp={cfg.fsdp} does not fit {len(devices)} devices"
        )
    sizes = [len(devices) // known if s == -1 else s for s in sizes]
    if int(np.prod(sizes)) != len(devices):
        raise ValueError(f"config.mesh data x fsdp = {sizes} must use all {len(devices)} devices")
    return Mesh(np.asarray(devices).reshape(sizes), AXES)


def fsdp_spec(shape: Sequence[int], fsdp_size: int, min_size: int) -> P:
    """Shard the largest dimension divisible by the fsdp axis; small params stay replicated."""
    if fsdp_size == 1 or int(np.prod(shape)) < min_size:
        return P()
    for dim in np.argsort(shape)[::-1]:
        if shape[dim] % fsdp_size == 0:
            spec = [None] * len(shape)
            spec[dim] = "fsdp"
            return P(*spec)
    return P()


def tree_shardings(mesh: Mesh, abstract_tree, min_size: int):
    """NamedShardings for a tree of arrays/ShapeDtypeStructs (params, optimizer state)."""
    fsdp = mesh.shape["fsdp"]
    return jax.tree.map(
        lambda x: NamedSharding(mesh, fsdp_spec(x.shape, fsdp, min_size)), abstract_tree
    )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, BATCH_SPEC)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's rows of the batch -> global arrays split over the mesh's batch axis."""
    sharding = batch_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local)


def to_host(x: jax.Array) -> np.ndarray:
    """A (possibly multi-host) global array as a full numpy array on every process."""
    if jax.process_count() == 1 or x.is_fully_addressable:
        return np.asarray(jax.device_get(x))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
