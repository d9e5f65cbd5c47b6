"""Export a run's trained weights: a standalone Orbax checkpoint, a .safetensors file and
the resolved config, to any path or URI Orbax and etils can write (gs:// included).

    python -m mim_jax.main --mode=export --workdir=RUN --export_to=gs://bucket/mae_b16

Layout of the export: `params/` (Orbax), `params.safetensors` (keys "encoder.blocks_0.
attn.qkv.kernel", float32, Flax layout), `config.json`, `export.json` (what and from where).
It loads back with `load`, or as `config.init_from` to start a new run from it.
"""

import json

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import safetensors.numpy
from absl import logging
from etils import epath

from mim_jax import checkpoint, methods


def read_config(workdir: str) -> ml_collections.ConfigDict:
    path = checkpoint.as_dir(workdir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"--workdir={workdir}: no config.json (is it a training workdir?)")
    return ml_collections.ConfigDict(json.loads(path.read_text()))


def export(
    workdir: str, to: str, include_decoder: bool = False, step: int | None = None
) -> epath.Path:
    """Writes the encoder (and with `include_decoder`, all) params of `workdir`'s latest
    (or `step`'s) checkpoint to `to`. Returns the export directory."""
    config = read_config(workdir)
    method = methods.build(config)
    ckpt = checkpoint.Checkpointer(checkpoint.checkpoints_dir(workdir), read_only=True)
    step = ckpt.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"--workdir={workdir}: no checkpoint to export")
    params = checkpoint.read_params(ckpt.directory / str(step))
    # A pretraining run exports its encoder; a classifier (no encoder_keys) all of itself.
    encoder_keys = getattr(method, "encoder_keys", None)
    parts = ["encoder", "decoder"] if include_decoder else ["encoder"]
    if encoder_keys is None:
        parts = ["encoder", "head"]
    elif not include_decoder:
        params = {k: v for k, v in params.items() if k in encoder_keys}

    model_state = None
    if getattr(method, "stateful", False):  # BatchNorm statistics, needed for inference
        model_state = checkpoint.read_model_state(ckpt.directory / str(step))
    info = {"workdir": str(checkpoint.as_dir(workdir)), "step": step}
    out = write(to, params, config, parts, info, model_state=model_state)
    logging.info("Exported params of step %d to %s", step, out)
    return out


def write(
    to: str,
    params,
    config: ml_collections.ConfigDict,
    parts: list[str],
    info: dict,
    model_state=None,
) -> epath.Path:
    """Writes the export layout (`params/`, `params.safetensors`, `config.json`, then
    `export.json` = `info` + method, parts, parameter count) to `to`; refuses to overwrite
    an export. Shared by `export` and `mim_jax.convert` (converted official weights)."""
    out = checkpoint.as_dir(to)
    if (out / "params").exists():
        raise FileExistsError(f"{to} already holds an export")
    out.mkdir(parents=True, exist_ok=True)
    saver = ocp.StandardCheckpointer()
    saver.save(out / "params", params)
    parts = list(parts)
    if model_state is not None:
        saver.save(out / "model_state", model_state)
        parts.append("model_state")
    flat = flatten(params)
    (out / "params.safetensors").write_bytes(safetensors.numpy.save(flat))
    (out / "config.json").write_text(config.to_json_best_effort(indent=2))
    saver.wait_until_finished()
    info = {
        **info,
        "method": config.method,
        "parts": parts,
        "num_params": int(sum(v.size for v in flat.values())),
    }
    (out / "export.json").write_text(json.dumps(info, indent=2))  # written last: complete
    logging.info("Wrote %s params to %s", f"{info['num_params']:,}", out)
    return out


def flatten(params) -> dict[str, np.ndarray]:
    """{"encoder": {"blocks_0": {...}}} -> {"encoder.blocks_0....": float32 array}."""
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return {
        checkpoint.path_str(path, "."): np.ascontiguousarray(np.asarray(v, np.float32))
        for path, v in flat
    }


def load(uri: str) -> tuple[dict, ml_collections.ConfigDict]:
    """(params as host arrays, config) of an export."""
    path = checkpoint.as_dir(uri)
    if not (path / "export.json").exists():
        raise FileNotFoundError(f"{uri}: not a complete export (no export.json)")
    return checkpoint.read_params(path), ml_collections.ConfigDict(
        json.loads((path / "config.json").read_text())
    )
