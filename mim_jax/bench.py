"""Training-step benchmark: the real jitted train step of any config, timed on synthetic
batches already on the device (no input pipeline; that one is `mim_jax.data.bench`).

    python -m mim_jax.bench --config=configs/mae.py:variant=B/16,data=synthetic \
        --batch=256 --steps=50

Prints one JSON line: median step time over the timed steps (after `--warmup` steps,
the first of which compiles), samples/s, the analytic FLOPs of the step (`mim_jax.flops`)
as model TFLOP/s and MFU against the device's dense bf16 peak (`flops.PEAK_FLOPS`),
XLA's own FLOP count for reference, peak device memory, the device kind, the jax
version, dtype, attention kernel and remat policy, and the number of compilations
during and after the warm-up ("compiles_after_warmup" must be 0: the step never
recompiles).
"""

import collections
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from mim_jax import config_lib, profiling

# jax.monitoring event recorded around each XLA backend compilation (jax._src.dispatch
# BACKEND_COMPILE_EVENT), with the jitted function's name as `fun_name`.
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_counters: list[collections.Counter] = []
_listening = False


def _on_duration(event: str, duration: float, **kwargs) -> None:
    del duration
    if event == BACKEND_COMPILE_EVENT:
        for counter in _counters:
            counter[kwargs.get("fun_name", "?")] += 1


@contextlib.contextmanager
def count_compiles() -> Iterator[collections.Counter]:
    """Counts XLA compilations by jitted function name (e.g. "train_step") while active."""
    global _listening
    import jax

    if not _listening:  # jax.monitoring has no public way to remove a listener: add one once
        jax.monitoring.register_event_duration_secs_listener(_on_duration)
        _listening = True
    counter = collections.Counter()
    _counters.append(counter)
    try:
        yield counter
    finally:
        _counters.remove(counter)


def compiles_of(counter: collections.Counter, name: str = "train_step") -> int:
    """Compilations of the function `name` in a `count_compiles` counter (JAX names the
    event "jit(<name>)")."""
    return sum(n for k, n in counter.items() if k.removeprefix("jit(").rstrip(")") == name)


def synthetic_batch(abstract_batch: dict, num_classes: int, seed: int = 0) -> dict:
    """A random global batch shaped and sharded like `abstract_batch`, made on the devices:
    uint8 pixels (or float32 log-mels) and labels in [0, num_classes)."""
    import jax
    import jax.numpy as jnp

    spec = abstract_batch["image"]

    def make(key):
        k_image, k_label = jax.random.split(key)
        if spec.dtype == jnp.uint8:
            image = jax.random.randint(k_image, spec.shape, 0, 256, jnp.int32).astype(jnp.uint8)
        else:
            image = jax.random.normal(k_image, spec.shape, spec.dtype)
        label = jax.random.randint(k_label, spec.shape[:1], 0, max(num_classes, 1), jnp.int32)
        return {"image": image, "label": label}

    shardings = {k: v.sharding for k, v in abstract_batch.items()}
    return jax.jit(make, out_shardings=shardings)(jax.random.PRNGKey(seed))


def _peak_memory_gib(devices) -> float | None:
    """Largest peak bytes in use over `devices` (None where the backend keeps no stats)."""
    peaks = []
    for d in devices:
        stats = d.memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            peaks.append(stats["peak_bytes_in_use"])
    return max(peaks) / 2**30 if peaks else None


def _resolved_attention(config) -> str:
    """What config.model.attention runs as for the encoder's head dim on this host."""
    from mim_jax.models import attention

    m = config.model
    dtype = config_lib.compute_dtype(config.dtype)
    width, heads = m.get("width"), m.get("num_heads")
    head_dim = width // heads if width and heads else 64
    return attention.resolve(m.get("attention", "auto"), dtype, head_dim)


def run(
    config,
    steps: int = 20,
    warmup: int = 3,
    batch: int | None = None,
    profile_dir: str | None = None,
    profile_steps: int = 5,
) -> dict:
    """Times `steps` train steps of `config` after `warmup` ones; returns the JSON fields.
    With `profile_dir`, then traces `profile_steps` more steps there (`jax.profiler`) and
    adds where their device time went (`mim_jax.profiling`; also `profile_summary.json`)."""
    import jax
    import numpy as np

    from mim_jax import flops, sharding, train

    if batch:
        config.batch_size = batch
    if steps < 1 or warmup < 1 or profile_steps < 1:
        raise ValueError(
            f"--steps, --warmup and --profile_steps must be >= 1, got {steps}, {warmup} "
            f"and {profile_steps}"
        )
    config_lib.validate(config, jax.device_count())
    mesh = sharding.make_mesh(config.mesh)
    per_epoch = 1000  # sets only the lr schedule's constants
    total = config_lib.get_steps(config, "total", per_epoch, "config")
    warm = config_lib.get_steps(config.optim, "warmup", per_epoch, "config.optim") or 0
    analytic = flops.step_flops(config)
    devices = jax.devices()
    kind = devices[0].device_kind
    peak, peak_source = flops.peak_flops(kind)

    with count_compiles() as compiles:
        parts = train.build_step(config, mesh, per_epoch, total, warm)
        lowered = parts.train_step.lower(parts.abstract_state, parts.abstract_batch)
        cost = lowered.cost_analysis()  # XLA's count of the lowered step, incl. elementwise
        cost = cost[0] if isinstance(cost, list | tuple) else cost
        xla_flops = float(cost["flops"]) if cost and "flops" in cost else None
        host_transfers = len(profiling.host_transfers(lowered.as_text()))
        state = parts.init_fn(parts.seed_key)
        data = synthetic_batch(parts.abstract_batch, config.data.num_classes, config.seed)
        jax.block_until_ready((state, data))
        before = compiles_of(compiles)
        for _ in range(warmup):
            state, metrics = parts.train_step(state, data)
        jax.block_until_ready((state, metrics))
        warmup_compiles = compiles_of(compiles) - before
        after_warmup = sum(compiles.values())
        times = []
        for _ in range(steps):
            tic = time.perf_counter()
            state, metrics = parts.train_step(state, data)
            jax.block_until_ready((state, metrics))
            times.append(time.perf_counter() - tic)
        compiles_after = sum(compiles.values()) - after_warmup

    profile = {}
    if profile_dir:
        profile = _profile(parts, lowered, state, data, profile_dir, profile_steps)
        state = profile.pop("state")
        metrics = profile.pop("metrics")

    step_s = statistics.median(times)
    b = config.batch_size
    step_flops = analytic.training * b
    achieved = step_flops / step_s
    num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state["params"]))
    return {
        "method": config.method,
        "batch": b,
        "steps": steps,
        "warmup": warmup,
        "step_time_s": step_s,
        "step_time_min_s": min(times),
        "samples_per_s": b / step_s,
        "analytic_gflop_per_sample": analytic.training / 1e9,
        "analytic_tflop_per_step": step_flops / 1e12,
        "model_tflops": achieved / 1e12,  # per second, all devices together
        "mfu": achieved / (peak * len(devices)) if peak else None,
        "peak_tflops_per_device": peak / 1e12 if peak else None,
        "peak_source": peak_source,
        "xla_tflop_per_step": xla_flops / 1e12 if xla_flops is not None else None,
        "peak_memory_gib": _peak_memory_gib(jax.local_devices()),
        "device_kind": kind,
        "devices": len(devices),
        "jax": jax.__version__,
        "dtype": config_lib.compute_dtype(config.dtype).name,
        "attention": config.model.get("attention", "auto"),
        "attention_resolved": _resolved_attention(config),
        "remat": config.model.get("remat", "none"),
        "params": num_params,
        "final_loss": float(metrics["loss"]),
        "compiles_warmup": warmup_compiles,
        "compiles_after_warmup": compiles_after,
        "host_transfers": host_transfers,  # callbacks / infeed / outfeed in the step: want 0
        **profile,
    }


def _profile(parts, lowered, state, data, profile_dir: str, steps: int) -> dict:
    """Traces `steps` train steps into `profile_dir` and summarizes them by op."""
    import jax

    hlo = lowered.compile().as_text()  # the step's optimized HLO: names the traced ops
    with jax.profiler.trace(profile_dir):
        for _ in range(steps):
            state, metrics = parts.train_step(state, data)
        jax.block_until_ready((state, metrics))
    summary = profiling.summarize(profiling.find_trace(profile_dir), hlo, steps)
    path = Path(profile_dir) / "profile_summary.json"
    path.write_text(json.dumps(summary, indent=1))
    print(profiling.format_summary(summary), file=sys.stderr, flush=True)
    return {
        "state": state,
        "metrics": metrics,
        "profile_summary": str(path),
        "profile_device_ms_per_step": summary["device_ms_per_step"],
        "profile_by_category_ms": summary["by_category_ms"],
        "profile_by_phase_ms": summary["by_phase_ms"],
    }


def round_floats(obj):
    """Floats to 6 significant digits, through dicts (the JSON line stays short)."""
    if isinstance(obj, float):
        return float(f"{obj:.6g}")
    if isinstance(obj, dict):
        return {k: round_floats(v) for k, v in obj.items()}
    return obj


def _define_flags() -> None:
    """The CLI's flags, defined only when run as a program (mim_jax.main owns --config
    when both are imported)."""
    config_lib.add_config_root_to_path(sys.argv)
    config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
    flags.DEFINE_integer("batch", None, "Global batch (default: the config's batch_size).")
    flags.DEFINE_integer("steps", 20, "Timed steps (the median is reported).")
    flags.DEFINE_integer("warmup", 3, "Untimed steps first (the first one compiles).")
    flags.DEFINE_string("json_out", None, "Also append the JSON line to this file.")
    flags.DEFINE_string(
        "profile_dir",
        None,
        "A local directory: trace --profile_steps more steps there and print where time goes.",
    )
    flags.DEFINE_integer("profile_steps", 5, "Steps traced with --profile_dir.")
    flags.mark_flags_as_required(["config"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    report = run(f.config, f.steps, f.warmup, f.batch, f.profile_dir, f.profile_steps)
    line = json.dumps(round_floats(report))
    print(line, flush=True)
    if f.json_out:
        with open(f.json_out, "a") as out:
            out.write(line + "\n")
    if report["compiles_after_warmup"]:
        print("The train step recompiled after the warm-up.", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
