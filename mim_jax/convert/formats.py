"""Key mappings between mim_jax params and official PyTorch state dicts, as data.

A `Format` is an ordered list of (regex on our param path, their key prefix) renames; the
rest of our path follows with "/" -> "." and Flax leaf names turned into torch ones
(`kernel`/`scale` -> `weight`). The tensor layout change follows from the leaf:

- Dense `kernel` [in, out] <-> Linear `weight` [out, in] (transpose);
- Conv `kernel` [*k, C, D] <-> Conv2d/Conv3d `weight` [D, C, *k] (patch and tubelet embeds);
- a prefix containing `{qkv}`: our fused qkv [D, 3D] (bias [3D]) <-> three Linears named
  query/key/value (Hugging Face), split in timm's q, k, v order;
- everything else (LayerNorm, biases, tokens, VideoMAE's q_bias/v_bias) is copied.

One table serves both directions, so ours -> theirs -> ours is exact by construction.
Fixed sin-cos tables are not params in our models (docs/design.md), but MAE-family state
dicts hold them: `fixed_tables` gives their values for export and for checking on import.
"""

import dataclasses
import re
from collections.abc import Callable, Mapping

import numpy as np

COPY, LINEAR, CONV, QKV = "copy", "linear", "conv", "qkv"
QKV_NAMES = ("query", "key", "value")


@dataclasses.dataclass(frozen=True)
class Format:
    """A family of state dicts: `renames` map our param paths to their key prefixes
    (first match wins, `\\1` back-references allowed); `aliases` rewrite other spellings of
    their keys (e.g. transformers 5 module names) to the ones `renames` produce."""

    name: str
    source: str  # the official file whose names these are
    methods: tuple[str, ...]  # our methods whose params it maps
    renames: tuple[tuple[str, str], ...]
    aliases: tuple[tuple[str, str], ...] = ()
    # their key -> our model attribute giving the fixed table, called as fn(model).
    fixed: tuple[tuple[str, Callable], ...] = ()


def _mae_pos(model) -> np.ndarray:
    return model.pos_table(model.width)[None]  # [1, 1 + L, D], cls row zero


def _mae_decoder_pos(model) -> np.ndarray:
    return model.pos_table(model.decoder_width)[None]


def _block(ours: str, theirs: str, hf: bool) -> tuple[tuple[str, str], ...]:
    """Renames of one stack of transformer blocks: our `ours/blocks_N/...` to their
    `theirs.N.` (timm names inside) or, with `hf`, Hugging Face's ViT layer names."""
    prefix = rf"^{ours}/blocks_(\d+)/"
    if not hf:
        return ((prefix, theirs + r".\1."),)
    inner = (
        ("norm1/", "layernorm_before."),
        ("norm2/", "layernorm_after."),
        ("attn/qkv/", "attention.attention.{qkv}."),
        ("attn/q_bias", "attention.attention.q_bias"),
        ("attn/v_bias", "attention.attention.v_bias"),
        ("attn/proj/", "attention.output.dense."),
        ("mlp/fc1/", "intermediate.dense."),
        ("mlp/fc2/", "output.dense."),
    )
    return tuple((prefix + a, f"{theirs}.\\1.{b}") for a, b in inner)


# facebookresearch/mae models_mae.py (MaskedAutoencoderViT): pretrain checkpoints, encoder
# only (mae_pretrain_vit_*.pth) or with the decoder (*_full.pth).
MAE = Format(
    name="mae",
    source="facebookresearch/mae models_mae.py",
    methods=("mae", "colormae"),
    renames=(
        *_block("encoder", "blocks", hf=False),
        (r"^encoder/norm/", "norm."),
        *_block("decoder", "decoder_blocks", hf=False),
        (r"^decoder/norm/", "decoder_norm."),
    ),
    fixed=(("pos_embed", _mae_pos), ("decoder_pos_embed", _mae_decoder_pos)),
)

# timm vision_transformer.py VisionTransformer (vit_base_patch16_224 names); MAE's
# fine-tuned checkpoints (models_vit.py, global pool) are these plus `fc_norm`.
TIMM = Format(
    name="timm",
    source="timm/models/vision_transformer.py",
    methods=("classifier", "mae", "colormae"),
    renames=(*_block("encoder", "blocks", hf=False), (r"^encoder/norm/", "norm.")),
    fixed=(("pos_embed", _mae_pos),),  # only for models whose table is fixed (MAE)
)

# MCG-NJU/VideoMAE modeling_pretrain.py (PretrainVisionTransformer); VideoMAE V2's
# models/modeling_pretrain.py uses the same names. Position tables are not saved.
VIDEOMAE = Format(
    name="videomae",
    source="MCG-NJU/VideoMAE modeling_pretrain.py",
    methods=("videomae", "videomae_v2"),
    renames=(
        (r"^patch_embed/", "encoder.patch_embed."),
        *_block("encoder", "encoder.blocks", hf=False),
        (r"^encoder/norm/", "encoder.norm."),
        *_block("decoder", "decoder.blocks", hf=False),
        (r"^decoder/norm/", "decoder.norm."),
        (r"^head/", "decoder.head."),
    ),
)

# transformers models/vit_mae/modeling_vit_mae.py, in the Hub layout of facebook/vit-mae-*
# (transformers 4 names; transformers 5 renames them on load, `aliases` read its own).
HF_VITMAE = Format(
    name="hf_vitmae",
    source="transformers models/vit_mae/modeling_vit_mae.py (ViTMAEForPreTraining)",
    methods=("mae", "colormae"),
    renames=(
        (r"^patch_embed/proj/", "vit.embeddings.patch_embeddings.projection."),
        (r"^cls_token", "vit.embeddings.cls_token"),
        *_block("encoder", "vit.encoder.layer", hf=True),
        (r"^encoder/norm/", "vit.layernorm."),
        (r"^decoder_embed/", "decoder.decoder_embed."),
        (r"^mask_token", "decoder.mask_token"),
        *_block("decoder", "decoder.decoder_layers", hf=True),
        (r"^decoder/norm/", "decoder.decoder_norm."),
        (r"^decoder_pred/", "decoder.decoder_pred."),
    ),
    aliases=(
        (r"^vit\.layers\.(\d+)\.", r"vit.encoder.layer.\1."),
        (r"\.attention\.q_proj\.", ".attention.attention.query."),
        (r"\.attention\.k_proj\.", ".attention.attention.key."),
        (r"\.attention\.v_proj\.", ".attention.attention.value."),
        (r"\.attention\.o_proj\.", ".attention.output.dense."),
        (r"\.mlp\.fc1\.", ".intermediate.dense."),
        (r"\.mlp\.fc2\.", ".output.dense."),
    ),
    fixed=(
        ("vit.embeddings.position_embeddings", _mae_pos),
        ("decoder.decoder_pos_embed", _mae_decoder_pos),
    ),
)

# transformers models/videomae/modeling_videomae.py, Hub layout of MCG-NJU/videomae-*
# (q_bias/v_bias; transformers 5 calls them query.bias/value.bias).
HF_VIDEOMAE = Format(
    name="hf_videomae",
    source="transformers models/videomae/modeling_videomae.py (VideoMAEForPreTraining)",
    methods=("videomae", "videomae_v2"),
    renames=(
        (r"^patch_embed/proj/", "videomae.embeddings.patch_embeddings.projection."),
        *_block("encoder", "videomae.encoder.layer", hf=True),
        (r"^encoder/norm/", "videomae.layernorm."),
        *_block("decoder", "decoder.decoder_layers", hf=True),
        (r"^decoder/norm/", "decoder.norm."),
        (r"^head/", "decoder.head."),
    ),
    aliases=(
        (r"\.attention\.attention\.query\.bias$", ".attention.attention.q_bias"),
        (r"\.attention\.attention\.value\.bias$", ".attention.attention.v_bias"),
    ),
)

FORMATS: dict[str, Format] = {f.name: f for f in (MAE, TIMM, VIDEOMAE, HF_VITMAE, HF_VIDEOMAE)}


def get(name: str) -> Format:
    if name not in FORMATS:
        raise ValueError(f"unknown checkpoint format {name!r}; valid: {sorted(FORMATS)}")
    return FORMATS[name]


def for_method(method: str) -> list[Format]:
    """The formats whose names map `method`'s params."""
    return [f for f in FORMATS.values() if method in f.methods]


def their_keys(fmt: Format, path: str, ndim: int) -> tuple[tuple[str, ...], str]:
    """Our param path ("encoder/blocks_0/attn/qkv/kernel") and its rank -> (their keys,
    layout kind): one key, or query/key/value keys for a fused qkv split."""
    key = path
    for pattern, repl in fmt.renames:
        if re.match(pattern, path):
            key = re.sub(pattern, repl, path, count=1)
            break
    key = key.replace("/", ".")
    leaf = path.rsplit("/", 1)[-1]
    if leaf in ("kernel", "scale"):
        key = key[: -len(leaf)] + "weight"
    if "{qkv}" in key:
        return tuple(key.replace("{qkv}", n) for n in QKV_NAMES), QKV
    if leaf == "kernel":
        return (key,), LINEAR if ndim == 2 else CONV
    return (key,), COPY


def to_theirs(kind: str, x: np.ndarray) -> list[np.ndarray]:
    """Our tensor -> their tensor(s), in the layout `kind` names (C-contiguous copies:
    writers such as `safetensors.numpy.save` ignore strides)."""
    return [np.ascontiguousarray(t, np.float32) for t in _to_theirs(kind, np.asarray(x))]


def _to_theirs(kind: str, x: np.ndarray) -> list[np.ndarray]:
    if kind == LINEAR:  # Flax [in, out] -> torch [out, in]
        return [x.T]
    if kind == CONV:  # Flax [*k, C, D] -> torch [D, C, *k]
        return [np.transpose(x, (x.ndim - 1, x.ndim - 2, *range(x.ndim - 2)))]
    if kind == QKV:  # fused [D, 3D] / [3D] -> q, k, v ([D, D] torch layout / [D])
        parts = np.split(x, 3, axis=-1)
        return [p.T for p in parts] if x.ndim == 2 else parts
    return [x]


def to_ours(kind: str, xs: list[np.ndarray]) -> np.ndarray:
    """Their tensor(s) -> our tensor (a C-contiguous float32 copy); the inverse of `to_theirs`."""
    return np.ascontiguousarray(_to_ours(kind, [np.asarray(x) for x in xs]), np.float32)


def _to_ours(kind: str, xs: list[np.ndarray]) -> np.ndarray:
    if kind == LINEAR:
        return xs[0].T
    if kind == CONV:
        x = xs[0]
        return np.transpose(x, (*range(2, x.ndim), 1, 0))
    if kind == QKV:
        return np.concatenate([x.T if x.ndim == 2 else x for x in xs], axis=-1)
    return xs[0]


def their_shape(kind: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of each of their tensors for one of ours of `shape` (for reports)."""
    return to_theirs(kind, np.zeros(shape, np.float32))[0].shape


def canonical(fmt: Format, tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`tensors` with their keys rewritten by the format's aliases (other spellings of the
    same weights), so that `their_keys` names match."""
    out = {}
    for key, value in tensors.items():
        for pattern, repl in fmt.aliases:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def fixed_tables(fmt: Format, model) -> dict[str, np.ndarray]:
    """Their keys holding tables our `model` computes instead of storing (MAE's fixed
    sin-cos position embeddings); {} for models without such tables."""
    if not hasattr(model, "pos_table"):
        return {}
    return {key: np.asarray(fn(model), np.float32) for key, fn in fmt.fixed}
