"""Reading and writing PyTorch state dicts as {key: numpy array}.

`.safetensors` needs only the `safetensors` package (numpy API); `.pth`/`.pt`/`.bin`
(pickles) need PyTorch, imported here lazily so that the rest of mim_jax never needs it.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
import safetensors.numpy
from etils import epath

INSTALL_HINT = "pip install -e '.[interop]'  (from the mim_jax checkout; CPU PyTorch is enough)"
# Where official training scripts nest the weights: MAE and VideoMAE save {"model": ...},
# DeiT/BEiT-family code sometimes {"module": ...} or {"state_dict": ...}.
WRAPPER_KEYS = ("model", "module", "state_dict", "model_state")
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def _import_torch(path: str):
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"Reading {path} (a PyTorch pickle) needs PyTorch, which is not installed: "
            f"{INSTALL_HINT}. A .safetensors file needs no PyTorch."
        ) from e
    return torch


def unwrap(obj: Any, path: str = "<state dict>") -> dict[str, Any]:
    """The tensor dict inside an official checkpoint: descends through wrapper keys
    ("model", "module", "state_dict") and strips a DistributedDataParallel "module." prefix."""
    while isinstance(obj, Mapping):
        wrappers = [k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
        if not wrappers:
            break
        obj = obj[wrappers[0]]
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{path}: no state dict found (looked inside {WRAPPER_KEYS})")
    keys = list(obj)
    if all(k.startswith("module.") for k in keys):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return dict(obj)


def to_numpy(tensors: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """float32 numpy copies of torch tensors or arrays; non-tensor entries (e.g. an epoch
    counter saved next to the weights) are left out."""
    out = {}
    for key, value in tensors.items():
        if hasattr(value, "detach"):  # a torch tensor (bf16/fp16 included)
            value = value.detach().cpu().float().numpy()
        if isinstance(value, np.ndarray):
            out[key] = np.asarray(value, np.float32)
    return out


def read(path: str | epath.PathLike) -> dict[str, np.ndarray]:
    """The state dict of `path` (.safetensors or a torch pickle) as float32 numpy arrays."""
    path = epath.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        return to_numpy(unwrap(safetensors.numpy.load(path.read_bytes()), str(path)))
    if path.suffix not in PICKLE_SUFFIXES:
        raise ValueError(
            f"{path}: unknown checkpoint type {path.suffix!r}; expected .safetensors or one "
            f"of {PICKLE_SUFFIXES} (a PyTorch pickle)"
        )
    torch = _import_torch(str(path))
    with path.open("rb") as f:
        # weights_only=False: official checkpoints pickle argparse Namespaces next to the
        # weights (MAE's "args"), which the safe loader refuses. Load only files you trust.
        obj = torch.load(f, map_location="cpu", weights_only=False)
    return to_numpy(unwrap(obj, str(path)))


def write_safetensors(
    path: str | epath.PathLike, tensors: Mapping[str, np.ndarray], metadata: dict | None = None
) -> None:
    """Writes float32 contiguous tensors as .safetensors (torch-free; `{"format": "pt"}`
    metadata, which transformers' loader asks for)."""
    arrays = {k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}
    data = safetensors.numpy.save(arrays, metadata={"format": "pt", **(metadata or {})})
    epath.Path(path).write_bytes(data)
