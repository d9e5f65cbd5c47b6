"""Entry point: `python -m mim_jax.main --config=configs/mae.py[:args] --workdir=DIR`.

`--config.key=value` overrides any config key; a misspelt key fails here, before any
compilation, with the closest valid key named. `--mode=export --workdir=RUN
--export_to=URI` writes a run's trained weights (see mim_jax/export.py).
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from mim_jax import config_lib

config_lib.add_config_root_to_path(sys.argv)
_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and images go.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "export"], "Train, or export a run.")
_EXPORT_TO = flags.DEFINE_string("export_to", None, "--mode=export: target dir or URI (gs://).")
_EXPORT_DECODER = flags.DEFINE_bool("export_decoder", False, "--mode=export: decoder too.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed",
    False,
    "Multi-process run: call jax.distributed.initialize() first. TPU VM pods and SLURM jobs "
    "(srun, one task per node) are detected; elsewhere pass --coordinator, --num_processes "
    "and --process_id (or set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID).",
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator", None, "host:port of process 0's coordinator (implies --distributed)."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the run (all hosts).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0..N-1.")
flags.mark_flags_as_required(["workdir"])


def distributed_args(
    coordinator: str | None, num_processes: int | None, process_id: int | None, env=os.environ
) -> dict:
    """jax.distributed.initialize kwargs from the flags, else the JAX_* environment: all
    three, or none for JAX's own cluster detection (TPU pods, SLURM)."""
    args = {
        "coordinator_address": coordinator or env.get("JAX_COORDINATOR_ADDRESS"),
        "num_processes": num_processes
        if num_processes is not None
        else env.get("JAX_NUM_PROCESSES"),
        "process_id": process_id if process_id is not None else env.get("JAX_PROCESS_ID"),
    }
    given = {k: v for k, v in args.items() if v not in (None, "")}
    if given and len(given) < len(args):
        missing = sorted(args.keys() - given.keys())
        raise app.UsageError(
            f"Distributed settings incomplete: got {sorted(given)}, missing {missing}. Give all "
            "three (--coordinator/--num_processes/--process_id, or JAX_COORDINATOR_ADDRESS/"
            "JAX_NUM_PROCESSES/JAX_PROCESS_ID), or none for TPU pod / SLURM detection."
        )
    for key in ("num_processes", "process_id"):
        if key in given:
            given[key] = int(given[key])
    if given and not 0 <= given["process_id"] < given["num_processes"]:
        raise app.UsageError(
            f"--process_id={given['process_id']} must be in [0, {given['num_processes']})"
        )
    return given


def _initialize_distributed() -> None:
    import jax

    kwargs = distributed_args(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    jax.distributed.initialize(**kwargs)
    logging.info(
        "Process %d of %d: %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    if jax.process_index() != 0:  # one log per run: the others report only problems
        logging.set_verbosity(logging.WARNING)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _MODE.value == "train" and _CONFIG.value is None:
        raise app.UsageError("--config is required for --mode=train")
    if _MODE.value == "export" and not _EXPORT_TO.value:
        raise app.UsageError("--mode=export needs --export_to=DIR_OR_URI")
    from mim_jax import export, metrics, train  # after flag parsing: bad configs fail first

    metrics.quiet_library_logs()
    explicit = (_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    if _DISTRIBUTED.value or any(v is not None for v in explicit):
        _initialize_distributed()
    if _MODE.value == "export":
        export.export(_WORKDIR.value, _EXPORT_TO.value, include_decoder=_EXPORT_DECODER.value)
        return
    logging.info("Config:\n%s", _CONFIG.value)
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
