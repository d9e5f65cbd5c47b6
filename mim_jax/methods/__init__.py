"""Methods: each a small object with `init`, `loss` and optional `features`/`reconstruct`."""

import difflib
from collections.abc import Callable

import ml_collections

from mim_jax.methods import (
    audiomae,
    cae,
    classifier,
    colormae,
    crossmae,
    mae,
    mae_st,
    maskfeat,
    simmim,
    videomae,
)

# name -> factory(config) building the method object.
METHODS: dict[str, Callable[[ml_collections.ConfigDict], object]] = {
    "mae": mae.from_config,
    "mae_st": mae_st.from_config,
    "videomae": videomae.from_config,
    # VideoMAE V2 is VideoMAE with the running-cell decoder mask (model.decoder_mask_ratio).
    "videomae_v2": videomae.from_config,
    "audiomae": audiomae.from_config,
    "simmim": simmim.from_config,
    "maskfeat": maskfeat.from_config,
    "crossmae": crossmae.from_config,
    "cae": cae.from_config,
    "colormae": colormae.from_config,
    # Fine-tuning, linear and attentive probing of a pretrained ViT (configs/finetune.py,
    # linprobe.py, attentive_probe.py).
    "classifier": classifier.from_config,
}


# Methods whose inputs are clips [B, T, H, W, C] (config.data.num_frames > 0).
VIDEO_METHODS = ("mae_st", "videomae", "videomae_v2")


# Methods whose inputs are log-mel spectrograms [B, T, F, 1] (config.data.num_mel_bins > 0).
AUDIO_METHODS = ("audiomae",)


def modality(config: ml_collections.ConfigDict) -> str:
    """What `config.method` takes: "image", "video" or "audio" (a classifier: what its
    backbone takes)."""
    name = config.method
    if name == "classifier":
        backbone = config.model.get("backbone", "vit")
        return {"videomae": "video", "audiomae": "audio"}.get(backbone, "image")
    return "video" if name in VIDEO_METHODS else "audio" if name in AUDIO_METHODS else "image"


def check_name(name: str) -> None:
    """Fail with the valid names (and the closest one) when `config.method` is unknown."""
    if name not in METHODS:
        close = difflib.get_close_matches(name, METHODS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"config.method={name!r} is not a method; valid: {sorted(METHODS)}.{hint}")


def build(config: ml_collections.ConfigDict):
    """The method object for `config.method`, with an online linear probe when
    `config.eval.online_probe` (pretraining methods with `features`)."""
    check_name(config.method)
    method = METHODS[config.method](config)
    if config.eval.get("online_probe") and hasattr(method, "features"):
        from mim_jax.methods.online_probe import OnlineProbe

        method = OnlineProbe(method, config.data.num_classes, config.eval.features)
    return method
