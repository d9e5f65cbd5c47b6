"""Official PyTorch checkpoints -> mim_jax params (an export directory `init_from` takes).

params, report = convert_tensors(config, state_dict.read("mae_pretrain_vit_base_full.pth"))
report = import_checkpoint(config, "mae_pretrain_vit_base_full.pth", out="DIR")
"""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from etils import epath

from mim_jax import checkpoint, config_lib, export, methods
from mim_jax.convert import formats, state_dict
from mim_jax.convert.report import Report
from mim_jax.models import posemb

FIXED_TABLE_ATOL = 1e-5  # float32 rounding of the same sin-cos table computed elsewhere
# Format detection: the chosen format must name at least this share of the source keys.
MIN_KNOWN_FRACTION = 0.5


def abstract_params(method, config: ml_collections.ConfigDict) -> dict:
    """The param tree of `method` as ShapeDtypeStructs (nothing is computed)."""
    batch = {"image": jax.ShapeDtypeStruct((1, *config_lib.input_shape(config.data)), jnp.float32)}
    if getattr(method, "stateful", False):
        return jax.eval_shape(method.init_variables, jax.random.key(0), batch)["params"]
    return jax.eval_shape(method.init, jax.random.key(0), batch)


def flat_shapes(tree) -> dict[str, tuple[int, ...]]:
    """{"encoder/blocks_0/attn/qkv/kernel": shape} of a param tree."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {checkpoint.path_str(p): tuple(v.shape) for p, v in flat}


def nest(flat: dict[str, np.ndarray]) -> dict:
    """{"a/b/c": x} -> {"a": {"b": {"c": x}}}."""
    tree: dict = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = tree
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return tree


def detect_format(method: str, tensors: dict[str, np.ndarray], shapes: dict) -> formats.Format:
    """The format (among those mapping `method`) whose key names cover most of `tensors`."""
    candidates = formats.for_method(method)
    if not candidates:
        raise ValueError(
            f"no PyTorch checkpoint format maps method {method!r}; formats: "
            + ", ".join(f"{f.name} ({', '.join(f.methods)})" for f in formats.FORMATS.values())
        )

    def score(fmt: formats.Format) -> int:
        """How many source keys the format's names for our params account for."""
        named = {key for key, _ in fmt.fixed}
        for path, shape in shapes.items():
            named.update(formats.their_keys(fmt, path, len(shape))[0])
        return len(named & set(formats.canonical(fmt, tensors)))

    best = max(candidates, key=score)
    if score(best) < MIN_KNOWN_FRACTION * len(tensors):
        sample = ", ".join(sorted(tensors)[:8])
        raise ValueError(
            f"the checkpoint's keys ({sample}, ...) match none of the formats for method "
            f"{method!r}: {[f.name for f in candidates]} (best: {best.name}, "
            f"{score(best)} of {len(tensors)} keys). Is --config the right method?"
        )
    return best


def _resample(
    table: np.ndarray, shape: tuple[int, ...], extra: int = 1
) -> tuple[np.ndarray, str] | None:
    """A learned position table [1, extra + h*h, D] bicubically resampled to `shape`'s
    square grid (cls row kept), with a note; None when either is not square."""
    if table.ndim != len(shape) or table.shape[-1] != shape[-1]:
        return None
    old, new = math.isqrt(table.shape[-2] - extra), math.isqrt(shape[-2] - extra)
    if old * old != table.shape[-2] - extra or new * new != shape[-2] - extra:
        return None
    out = posemb.resample(table, (old, old), (new, new), extra)
    return out, f"grid {old}x{old} -> {new}x{new} (bicubic)"


def _extra_rows(path: str) -> int | None:
    """Leading non-grid (cls) rows of the learned position table at our `path`, which a
    checkpoint of another grid is resampled for; None for any other param."""
    if path.endswith("pos_embed"):
        return 1
    if path.endswith("pos_embed/spatial"):  # MAE-ST's separable spatial table
        return 0
    return None


def convert_tensors(
    config: ml_collections.ConfigDict,
    tensors: dict[str, np.ndarray],
    fmt: str | None = None,
    source: str = "<state dict>",
) -> tuple[dict, Report]:
    """Their tensors -> (our params holding only what was converted, report). `fmt`
    (a `formats.FORMATS` name) is detected from the keys when None."""
    method = methods.build(config)
    shapes = flat_shapes(abstract_params(method, config))
    fmt_ = formats.get(fmt) if fmt else detect_format(config.method, tensors, shapes)
    if config.method not in fmt_.methods:
        raise ValueError(
            f"format {fmt_.name!r} ({fmt_.source}) maps methods {fmt_.methods}, "
            f"not --config's method {config.method!r}"
        )
    tensors = formats.canonical(fmt_, tensors)
    report = Report(source=source, format=fmt_.name, method=config.method)
    used: set[str] = set()
    loaded: dict[str, np.ndarray] = {}
    for path, shape in shapes.items():
        keys, kind = formats.their_keys(fmt_, path, len(shape))
        present = [k for k in keys if k in tensors]
        if not present:
            report.missing.append(f"{path} (looked for {', '.join(keys)})")
            continue
        used.update(present)
        if len(present) < len(keys):
            absent = sorted(set(keys) - set(present))
            report.mismatched.append(f"{path}: {', '.join(absent)} absent (needs all of {keys})")
            continue
        value = formats.to_ours(kind, [tensors[k] for k in keys])
        extra = _extra_rows(path)
        if value.shape != shape and extra is not None:
            resampled = _resample(value, shape, extra)
            if resampled is not None:
                value, how = resampled
                report.reshaped.append(f"{path} <- {keys[0]}: {how}")
        if value.shape != shape:
            want = formats.their_shape(kind, shape)
            got = tuple(tensors[keys[0]].shape)
            report.mismatched.append(f"{path} <- {', '.join(keys)}: shape {got}, expected {want}")
            continue
        loaded[path] = np.asarray(value, np.float32)
        report.loaded.append(path)

    for key, table in formats.fixed_tables(fmt_, method.model).items():
        if key not in tensors:
            continue
        used.add(key)
        got = tensors[key]
        if got.shape != table.shape:
            report.fixed.append(
                f"{key}: shape {got.shape}, this model's fixed table is {table.shape} "
                "(another grid; the model uses its own table)"
            )
        else:
            err = float(np.max(np.abs(got - table)))
            ok = err <= FIXED_TABLE_ATOL
            report.fixed.append(
                f"{key}: {'matches' if ok else 'DIFFERS FROM'} this model's fixed table "
                f"(max abs diff {err:.2g})" + ("" if ok else "; a learned table is not used here")
            )
    report.unexpected = sorted(set(tensors) - used)
    return nest(loaded), report


def _parts(method, params: dict) -> list[str]:
    keys = getattr(method, "encoder_keys", None)
    if keys is None:  # a classifier
        return ["encoder", "head"] if "head" in params else ["encoder"]
    return ["encoder"] + (["decoder"] if set(params) - set(keys) else [])


def import_checkpoint(
    config: ml_collections.ConfigDict,
    path: str,
    out: str,
    fmt: str | None = None,
    strict: bool = False,
) -> Report:
    """Converts the official checkpoint `path` (.pth or .safetensors) for `config`'s model
    and writes an export directory to `out` (`--config.init_from=out` loads it). Raises
    when nothing converts, or with `strict` when the report is not complete."""
    tensors = state_dict.read(path)
    params, report = convert_tensors(config, tensors, fmt, source=str(path))
    if not report.loaded:
        raise ValueError(f"nothing in {path} converted:\n{report}")
    if strict and not report.complete:
        raise ValueError(f"{path} does not match the model exactly (strict):\n{report}")
    info = {"source": str(path), "format": report.format, "report": report.counts()}
    directory = export.write(out, params, config, _parts(methods.build(config), params), info)
    (epath.Path(directory) / "convert_report.json").write_text(report.to_json())
    return report
