"""Entry point: `python -m mim_jax.main --config=configs/mae.py[:args] --workdir=DIR`.

`--config.key=value` overrides any config key; a misspelt key fails here, before any
compilation, with the closest valid key named.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags


def _add_config_root_to_path(argv: list[str]) -> None:
    """Make `from configs import common` work for `--config=<repo>/configs/x.py` from any cwd."""
    for i, arg in enumerate(argv):
        path = arg.split("=", 1)[1] if arg.startswith("--config=") else None
        if arg == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        if path:
            config_dir = os.path.dirname(os.path.abspath(path.split(":", 1)[0]))
            sys.path.insert(0, os.path.dirname(config_dir))


_add_config_root_to_path(sys.argv)
_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and images go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from mim_jax import metrics, train  # after flag parsing: bad configs fail before JAX starts

    metrics.quiet_library_logs()
    logging.info("Config:\n%s", _CONFIG.value)
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
