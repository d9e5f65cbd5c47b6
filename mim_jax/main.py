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
    "Call jax.distributed.initialize() first (multi-host: TPU pods and SLURM are detected; "
    "else set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID).",
)
flags.mark_flags_as_required(["workdir"])


def _initialize_distributed() -> None:
    import jax

    env = os.environ
    kwargs = {}
    if "JAX_NUM_PROCESSES" in env and "JAX_PROCESS_ID" in env:
        kwargs = dict(
            num_processes=int(env["JAX_NUM_PROCESSES"]), process_id=int(env["JAX_PROCESS_ID"])
        )
    jax.distributed.initialize(**kwargs)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _MODE.value == "train" and _CONFIG.value is None:
        raise app.UsageError("--config is required for --mode=train")
    if _MODE.value == "export" and not _EXPORT_TO.value:
        raise app.UsageError("--mode=export needs --export_to=DIR_OR_URI")
    from mim_jax import export, metrics, train  # after flag parsing: bad configs fail first

    metrics.quiet_library_logs()
    if _DISTRIBUTED.value:
        _initialize_distributed()
    if _MODE.value == "export":
        export.export(_WORKDIR.value, _EXPORT_TO.value, include_decoder=_EXPORT_DECODER.value)
        return
    logging.info("Config:\n%s", _CONFIG.value)
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
