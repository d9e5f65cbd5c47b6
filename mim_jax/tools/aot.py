"""Compile a config's real train step for a TPU pod ahead of time, on a CPU host.

    python -m mim_jax.tools.aot --config=configs/mae.py:variant=H/14,data=synthetic \
        --config.batch_size=4096 --topology=v5e:16x16

Needs libtpu (`pip install -e ".[tpu]"`), not a TPU. XLA's TPU compiler partitions the step
over the topology's chips with the config's mesh and reports, per chip, the memory of the
arguments (state + batch), outputs, temporaries and the peak, against the chip's HBM, and
the FLOPs of one step. One JSON line goes to stdout (and to --json_out when given).
Topology names are JAX's: v4:4x4x4, v5e:16x16 (a v5litepod-256), v5p:4x4x4 (v5p-128),
v6e:16x16, ...
"""

import json
import os
import sys

if __name__ == "__main__":  # before JAX loads: the host runs nothing, libtpu only compiles
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # no TPU is held: no lockfile

from absl import app, flags
from ml_collections import config_flags

from mim_jax import config_lib


def _define_flags() -> None:
    """The CLI's flags, defined only when run as a program (mim_jax.main owns --config
    when both are imported)."""
    config_lib.add_config_root_to_path(sys.argv)
    config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
    flags.DEFINE_string("topology", None, "TPU topology, e.g. v5e:16x16 or v5p:4x4x4.")
    flags.DEFINE_integer(
        "steps_per_epoch", 1000, "Only sets the lr schedule's constants (no data is read)."
    )
    flags.DEFINE_string("json_out", None, "Also append the JSON line to this file.")
    flags.mark_flags_as_required(["config", "topology"])


GIB = 2**30
# Per-chip HBM (Cloud TPU system architecture pages); dense bf16 peaks: flops.PEAK_FLOPS.
HBM = {
    "TPU v4": 32 * GIB,
    "TPU v5 lite": 16 * GIB,
    "TPU v5": 95 * GIB,  # v5p
    "TPU v6 lite": 32 * GIB,
}


def topology_devices(name: str) -> list:
    """The devices of a TPU topology `name`, without TPU hardware (libtpu's compiler)."""
    try:
        from jax.experimental import topologies

        return list(topologies.get_topology_desc(platform="tpu", topology_name=name).devices)
    except ImportError as e:
        raise SystemExit(f"--topology needs libtpu: pip install -e '.[tpu]' ({e})") from e
    except Exception as e:  # libtpu missing or an unknown name: say which
        raise SystemExit(f"--topology={name!r}: {e}") from e


def compile_report(config, devices: list, steps_per_epoch: int = 1000) -> dict:
    """Lowers and compiles `config`'s train step for `devices`; per-chip memory and FLOPs."""
    import jax

    from mim_jax import flops, sharding, train

    if config.dtype == "auto":  # "auto" looks at this host's backend (CPU): say bf16
        config.dtype = "bfloat16"
    config_lib.validate(config, len(devices))
    mesh = sharding.make_mesh(config.mesh, devices)
    steps = lambda cfg, name: config_lib.get_steps(cfg, name, steps_per_epoch, "config")
    total = steps(config, "total")
    parts = train.build_step(config, mesh, steps_per_epoch, total, steps(config.optim, "warmup"))
    compiled = parts.train_step.lower(parts.abstract_state, parts.abstract_batch).compile()
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    kind = devices[0].device_kind
    hbm, peak = HBM.get(kind), flops.peak_flops(kind)[0]
    # Donated state aliases its outputs: the peak is arguments + temporaries + the outputs
    # that do not reuse an argument's buffer.
    peak_bytes = (
        mem.argument_size_in_bytes
        + mem.temp_size_in_bytes
        + mem.output_size_in_bytes
        - mem.alias_size_in_bytes
    )
    params = sum(x.size for x in jax.tree.leaves(parts.abstract_state["params"]))
    flops = float(cost.get("flops", 0.0))
    report = {
        "config": config.method,
        "topology": None,
        "device_kind": kind,
        "chips": len(devices),
        "mesh": dict(mesh.shape),
        "batch_size": config.batch_size,
        "grad_accum_steps": config.grad_accum_steps,
        "dtype": config.dtype,
        "remat": config.model.get("remat", "none"),
        "params": int(params),
        "argument_gib": mem.argument_size_in_bytes / GIB,
        "output_gib": mem.output_size_in_bytes / GIB,
        "alias_gib": mem.alias_size_in_bytes / GIB,
        "temp_gib": mem.temp_size_in_bytes / GIB,
        "peak_gib": peak_bytes / GIB,
        "hbm_gib": hbm / GIB if hbm else None,
        "headroom": 1.0 - peak_bytes / hbm if hbm else None,
        "tflop_per_chip_step": flops / 1e12,
        "step_s_at_peak": flops / peak if peak else None,  # a lower bound on the step time
        "jax": jax.__version__,
    }
    return report


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    devices = topology_devices(f.topology)
    report = compile_report(f.config, devices, f.steps_per_epoch)
    report["topology"] = f.topology
    line = json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in report.items()})
    print(line, flush=True)
    if f.json_out:
        with open(f.json_out, "a") as out:
            out.write(line + "\n")
    if report["headroom"] is not None and report["headroom"] < 0:
        print(
            f"Does not fit: {report['peak_gib']:.1f} GiB per chip > {report['hbm_gib']:.0f} GiB "
            "HBM. Try --config.mesh.fsdp, --config.grad_accum_steps or --config.model.remat.",
            file=sys.stderr,
        )
        sys.exit(2)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
