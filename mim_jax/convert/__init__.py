"""Interoperability with PyTorch: official checkpoints in, timm / Hugging Face out.

- `importer`: an official state dict (MAE, timm ViT, VideoMAE / V2, their Hugging Face
  ports) -> an export directory that `--config.init_from=DIR` loads, with a `Report` of
  loaded, missing, unexpected, mismatched and resampled keys;
- `exporter`: our params -> timm `VisionTransformer` or `ViTMAEForPreTraining` /
  `VideoMAEForPreTraining` weights (safetensors) and config;
- `formats`: the key mappings as data; `state_dict`: .pth (torch, optional) and
  .safetensors (no torch) reading.

Command line: `python -m mim_jax.convert --help`; docs/convert.md.
"""

from mim_jax.convert.exporter import export_to, load_source
from mim_jax.convert.importer import convert_tensors, import_checkpoint
from mim_jax.convert.report import Report
from mim_jax.convert.state_dict import read as read_state_dict

__all__ = [
    "Report",
    "convert_tensors",
    "export_to",
    "import_checkpoint",
    "load_source",
    "read_state_dict",
]
