"""Command line for mim_jax.convert (docs/convert.md).

Import an official checkpoint for a config's model, writing an export dir:

    python -m mim_jax.convert --config=configs/mae.py:variant=B/16 \
        --torch_checkpoint=mae_pretrain_vit_base_full.pth --out=converted/mae_b16

Export a run or export dir to timm or Hugging Face:

    python -m mim_jax.convert --params=workdirs/mae_b16_export --to=hf --out=hf/mae_b16
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from mim_jax import config_lib

config_lib.add_config_root_to_path(sys.argv)
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Import: the config whose model the checkpoint is for.", lock_config=True
)
_TORCH_CHECKPOINT = flags.DEFINE_string(
    "torch_checkpoint", None, "Import: official checkpoint, .pth (needs torch) or .safetensors."
)
_FORMAT = flags.DEFINE_string(
    "format",
    None,
    "Import: key layout (mae, timm, videomae, hf_vitmae, hf_videomae, audiomae, crossmae, "
    "simmim, mae_st); detected from the keys when unset.",
)
_STRICT = flags.DEFINE_bool(
    "strict", False, "Import: fail unless every param and every source key converts."
)
_PARAMS = flags.DEFINE_string("params", None, "Export: an export dir or a training workdir.")
_TO = flags.DEFINE_enum("to", None, ["timm", "hf"], "Export: the target library's format.")
_OUT = flags.DEFINE_string("out", None, "Output directory.")
flags.mark_flags_as_required(["out"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    importing = _TORCH_CHECKPOINT.value is not None
    exporting = _PARAMS.value is not None or _TO.value is not None
    if importing == exporting:
        raise app.UsageError(
            "Give either --config and --torch_checkpoint (import) or --params and --to (export)"
        )
    from mim_jax import convert, metrics  # after flag parsing: bad configs fail first

    metrics.quiet_library_logs()
    if importing:
        if _CONFIG.value is None:
            raise app.UsageError("--torch_checkpoint needs --config (the model to convert for)")
        report = convert.import_checkpoint(
            _CONFIG.value, _TORCH_CHECKPOINT.value, _OUT.value, _FORMAT.value, _STRICT.value
        )
        print(report)
        print(f"Wrote {_OUT.value}: start a run from it with --config.init_from={_OUT.value}")
        return
    if not (_PARAMS.value and _TO.value):
        raise app.UsageError("Export needs both --params and --to")
    params, config = convert.load_source(_PARAMS.value)
    out = convert.export_to(params, config, _TO.value, _OUT.value)
    logging.info("Wrote %s checkpoint of %s to %s", _TO.value, _PARAMS.value, out)
    print(f"Wrote {out}/model.safetensors and {out}/config.json")


if __name__ == "__main__":
    app.run(main)
