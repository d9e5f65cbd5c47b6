"""mim_jax params -> timm / Hugging Face checkpoints that PyTorch code loads unchanged.

- `to="timm"`: `model.safetensors` with timm `VisionTransformer` names and `config.json`
  whose `model_args` build the matching model (`VisionTransformer(**model_args)`), from an
  MAE-family encoder or a `classifier` (linear head).
- `to="hf"`: `model.safetensors` + `config.json` for `ViTMAEForPreTraining` (method mae)
  or `VideoMAEForPreTraining` (videomae), loadable with `from_pretrained(dir)`; needs the
  decoder (`--mode=export --export_decoder`, or a converted `_full` checkpoint).

No PyTorch is needed to write them.
"""

import json

import jax
import ml_collections
import numpy as np
from etils import epath

from mim_jax import checkpoint, export, methods
from mim_jax.convert import formats, state_dict

TARGETS = ("timm", "hf")
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # transformers' VideoMAE loss un-normalises with these
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_source(uri: str) -> tuple[dict, ml_collections.ConfigDict]:
    """(params as host arrays, config) of an export dir or of a run's latest checkpoint."""
    path = checkpoint.as_dir(uri)
    if (path / "export.json").exists():
        return export.load(uri)
    config = export.read_config(uri)
    ckpt = checkpoint.Checkpointer(checkpoint.checkpoints_dir(uri), read_only=True)
    step = ckpt.latest_step()
    if step is None:
        raise FileNotFoundError(f"{uri}: neither an export nor a workdir with a checkpoint")
    return checkpoint.read_params(ckpt.directory / str(step)), config


def flat_params(params) -> dict[str, np.ndarray]:
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return {checkpoint.path_str(p): np.asarray(v, np.float32) for p, v in flat}


def to_state_dict(
    params, fmt: formats.Format, model, only: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """Our params (only the top-level names in `only`, if given) in `fmt`'s names and
    layouts, plus the fixed tables the format stores."""
    out = {}
    for path, value in flat_params(params).items():
        if only is not None and path.split("/")[0] not in only:
            continue
        keys, kind = formats.their_keys(fmt, path, value.ndim)
        out.update(zip(keys, formats.to_theirs(kind, value)))
    out.update(formats.fixed_tables(fmt, model))
    return out


def _image_size(config) -> int:
    return int(config.data.image_size)


def timm_model_args(config: ml_collections.ConfigDict) -> dict:
    """Keyword arguments of timm's `VisionTransformer` for this encoder (+ head)."""
    m = config.model
    args = dict(
        img_size=_image_size(config),
        patch_size=int(m.patch_size),
        in_chans=int(config.data.channels),
        embed_dim=int(m.width),
        depth=int(m.depth),
        num_heads=int(m.num_heads),
        mlp_ratio=float(m.mlp_ratio),
        qkv_bias=True,
        class_token=True,
        num_classes=0,
        global_pool="token",
        fc_norm=False,
    )
    if config.method == "classifier":
        if m.head != "linear":
            raise ValueError(
                f"timm's VisionTransformer has a linear head; model.head={m.head!r} has none"
            )
        gap = m.pool == "gap"
        args.update(num_classes=int(config.data.num_classes), fc_norm=gap)
        args.update(global_pool="avg" if gap else "token")
    return args


def _hf_transformer_fields(config: ml_collections.ConfigDict) -> dict:
    """The encoder/decoder fields `ViTMAEConfig` and `VideoMAEConfig` share."""
    m = config.model
    return dict(
        image_size=_image_size(config),
        patch_size=int(m.patch_size),
        num_channels=int(config.data.channels),
        hidden_size=int(m.width),
        num_hidden_layers=int(m.depth),
        num_attention_heads=int(m.num_heads),
        intermediate_size=int(m.width * m.mlp_ratio),
        decoder_hidden_size=int(m.decoder_width),
        decoder_num_hidden_layers=int(m.decoder_depth),
        decoder_num_attention_heads=int(m.decoder_heads),
        decoder_intermediate_size=int(m.decoder_width * m.mlp_ratio),
        hidden_act="gelu",  # exact (erf) GELU, as ours
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-6,
        qkv_bias=True,
        initializer_range=0.02,
        torch_dtype="float32",
    )


def hf_vitmae_config(config: ml_collections.ConfigDict) -> dict:
    """transformers `ViTMAEConfig` fields for an MAE model (configuration_vit_mae.py)."""
    m = config.model
    return dict(
        architectures=["ViTMAEForPreTraining"],
        model_type="vit_mae",
        **_hf_transformer_fields(config),
        mask_ratio=float(m.mask_ratio),
        norm_pix_loss=bool(m.norm_pix_loss),
    )


def hf_videomae_config(config: ml_collections.ConfigDict) -> dict:
    """transformers `VideoMAEConfig` fields (configuration_videomae.py). Its loss
    un-normalises clips with ImageNet mean/std, so data.mean/std must be those for the
    losses to agree."""
    m = config.model
    return dict(
        architectures=["VideoMAEForPreTraining"],
        model_type="videomae",
        **_hf_transformer_fields(config),
        num_frames=int(config.data.num_frames),
        tubelet_size=int(m.tubelet),
        use_mean_pooling=False,  # keeps the encoder's final norm (`videomae.layernorm`)
        norm_pix_loss=bool(m.norm_target),
    )


def export_to(
    params, config: ml_collections.ConfigDict, to: str, out: str | epath.PathLike
) -> epath.Path:
    """Writes `params` of `config`'s model as a `to` ("timm" or "hf") checkpoint in `out`:
    `model.safetensors` + `config.json`. Returns the directory."""
    if to not in TARGETS:
        raise ValueError(f"--to={to!r}; valid: {TARGETS}")
    method = methods.build(config)
    model = method.model
    top = set(params)
    if to == "timm":
        if config.method not in formats.TIMM.methods:
            raise ValueError(
                f"--to=timm takes methods {formats.TIMM.methods}, not {config.method!r}"
            )
        only = getattr(method, "encoder_keys", None)  # a classifier: all of it
        tensors = to_state_dict(params, formats.TIMM, model, only)
        meta = dict(
            architecture="vit_custom",
            model_args=timm_model_args(config),
            pretrained_cfg=dict(
                input_size=[int(config.data.channels), _image_size(config), _image_size(config)],
                mean=list(config.data.mean),
                std=list(config.data.std),
                num_classes=timm_model_args(config)["num_classes"],
            ),
            source="mim_jax",
            method=config.method,
        )
    else:
        fmt, meta = {
            "mae": (formats.HF_VITMAE, hf_vitmae_config),
            "videomae": (formats.HF_VIDEOMAE, hf_videomae_config),
            "videomae_v2": (formats.HF_VIDEOMAE, hf_videomae_config),
        }.get(config.method, (None, None))
        if fmt is None:
            raise ValueError(
                f"--to=hf takes methods mae, videomae and videomae_v2, not {config.method!r}"
            )
        needed = {"decoder", "mask_token"}
        if needed - top:
            raise ValueError(
                f"--to=hf writes the full pretraining model and needs the decoder, but the "
                f"params hold only {sorted(top)}: export the run with --export_decoder"
            )
        tensors = to_state_dict(params, fmt, model)
        meta = meta(config)
    out = checkpoint.as_dir(out)
    if (out / "model.safetensors").exists():
        raise FileExistsError(f"{out} already holds a model.safetensors")
    out.mkdir(parents=True, exist_ok=True)
    state_dict.write_safetensors(out / "model.safetensors", tensors)
    (out / "config.json").write_text(json.dumps(meta, indent=2))
    return out
