"""Key mappings between mim_jax params and official PyTorch state dicts, as data.

A `Format` is an ordered list of (regex on our param path, their key prefix) renames; the
rest of our path follows with "/" -> "." and Flax leaf names turned into torch ones
(`kernel`/`scale` -> `weight`). The tensor layout change follows from the leaf:

- Dense `kernel` [in, out] <-> Linear `weight` [out, in] (transpose);
- Conv `kernel` [*k, C, D] <-> Conv2d/Conv3d `weight` [D, C, *k] (patch and tubelet embeds);
- a prefix containing `{a,b,c}`: our fused qkv [D, 3D] (bias [3D]) <-> three Linears named
  a, b, c (Hugging Face's query/key/value, MAE-ST's q/k/v), split in timm's q, k, v order;
- a path matched by the format's `layouts`: the kind named there (SimMIM's head, a Dense
  kernel [in, out] <-> Conv2d 1x1 weight [out, in, 1, 1]);
- everything else (LayerNorm, biases, tokens, VideoMAE's q_bias/v_bias) is copied.

One table serves both directions, so ours -> theirs -> ours is exact by construction.
Fixed sin-cos tables are not params in our models (docs/design.md), but MAE-family state
dicts hold them (and BEiT-style ones their relative-position index buffer): `fixed_tables`
gives their values for export and for checking on import.
"""

import dataclasses
import re
from collections.abc import Callable, Mapping

import numpy as np

from mim_jax.models import posemb, vit

COPY, LINEAR, CONV, QKV, CONV1X1 = "copy", "linear", "conv", "qkv", "conv1x1"
SPLIT = re.compile(r"\{(\w+),(\w+),(\w+)\}")  # "{q,k,v}" in a rename: a fused qkv split


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
    # their key -> fn(model) giving the fixed table, or None where the model has none.
    fixed: tuple[tuple[str, Callable], ...] = ()
    # (regex on our param path, layout kind) where the leaf does not tell the layout.
    layouts: tuple[tuple[str, str], ...] = ()


def _mae_pos(model) -> np.ndarray | None:
    """MAE's fixed encoder table [1, 1 + L, D] (cls row zero); None for a learned one."""
    return model.pos_table(model.width)[None] if hasattr(model, "pos_table") else None


def _mae_decoder_pos(model) -> np.ndarray | None:
    return model.pos_table(model.decoder_width)[None] if hasattr(model, "pos_table") else None


def _sincos_pos(width: str) -> Callable:
    """fn(model) -> the [1, 1 + L, D] sin-cos table (zero cls row) of `model.<width>` on its
    grid, for models that compute the table inline (CrossMAE)."""
    return lambda model: posemb.sincos_2d(getattr(model, width), model.grid, cls_token=True)[None]


def _rel_pos_index(model) -> np.ndarray | None:
    """BEiT/SimMIM's `relative_position_index` buffer [1 + L, 1 + L] (persistent, so in
    their state dicts) of a ViT with a shared relative position bias; None otherwise."""
    if getattr(model, "backbone", "vit") != "vit" or not getattr(model, "rel_pos_bias", False):
        return None
    return vit.relative_position_index(model.grid, cls_token=True)


def _block(ours: str, theirs: str, hf: bool) -> tuple[tuple[str, str], ...]:
    """Renames of one stack of transformer blocks: our `ours/blocks_N/...` to their
    `theirs.N.` (timm names inside) or, with `hf`, Hugging Face's ViT layer names."""
    prefix = rf"^{ours}/blocks_(\d+)/"
    if not hf:
        return ((prefix, theirs + r".\1."),)
    inner = (
        ("norm1/", "layernorm_before."),
        ("norm2/", "layernorm_after."),
        ("attn/qkv/", "attention.attention.{query,key,value}."),
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

# facebookresearch/AudioMAE models_mae.py (MaskedAutoencoderViT, audio_exp=True):
# pretraining checkpoints, encoder and decoder. MAE's names, plus, with the Swin decoder
# (decoder_mode=1), timm_patch/swin_transformer.py's SwinTransformerBlock (V2-CR):
# attn.qkv/proj/tau, the position-bias MLP attn.meta_mlp.fc1/fc2, post-norms norm1/norm2
# (its attn_mask and relative_coordinates_log buffers are not persistent).
AUDIOMAE = Format(
    name="audiomae",
    source="facebookresearch/AudioMAE models_mae.py + timm_patch/swin_transformer.py",
    methods=("audiomae",),
    renames=(
        (r"^decoder/blocks_(\d+)/attn/meta_fc(\d)/", r"decoder_blocks.\1.attn.meta_mlp.fc\2."),
        *MAE.renames,
    ),
    fixed=MAE.fixed,
)

# TonyLianLong/CrossMAE models_cross.py (MaskedAutoencoderViT, --weight_fm --use_input) +
# transformer_utils.py (CrossAttentionBlock: norm1, cross_attn.q/kv/proj, norm2, mlp):
# no encoder `norm`, one LayerNorm per decoder block over the encoder width (dec_norms),
# the feature-map mixing Linear wfm.linear [decoder_depth, k], fixed sin-cos tables.
CROSSMAE = Format(
    name="crossmae",
    source="TonyLianLong/CrossMAE models_cross.py + transformer_utils.py",
    methods=("crossmae",),
    renames=(
        (r"^encoder/blocks_(\d+)/", r"blocks.\1."),
        (r"^decoder_(\d+)/", r"decoder_blocks.\1."),
        (r"^dec_norms_(\d+)/", r"dec_norms.\1."),
        (r"^feature_weights/", "wfm.linear."),
    ),
    fixed=(
        ("pos_embed", _sincos_pos("width")),
        ("decoder_pos_embed", _sincos_pos("decoder_width")),
    ),
)

# microsoft/SimMIM models/simmim.py (SimMIM, VisionTransformerForSimMIM) on
# models/vision_transformer.py, the ViT-B pretraining config (USE_SHARED_RPB, layer scale
# INIT_VALUES, no APE): everything under `encoder.`; attn.qkv without bias plus
# q_bias/v_bias; gamma_1/gamma_2; the shared rel_pos_bias table and its persistent index
# buffer; the head `decoder.0` a 1x1 Conv2d (then PixelShuffle, no params).
SIMMIM = Format(
    name="simmim",
    source="microsoft/SimMIM models/simmim.py + models/vision_transformer.py (ViT)",
    methods=("simmim",),
    renames=(
        (r"^encoder/encoder/blocks_(\d+)/", r"encoder.blocks.\1."),
        (r"^encoder/encoder/norm/", "encoder.norm."),
        (r"^encoder/rel_pos_bias/table$", "encoder.rel_pos_bias.relative_position_bias_table"),
        (r"^decoder/", "decoder.0."),
    ),
    fixed=(("encoder.rel_pos_bias.relative_position_index", _rel_pos_index),),
    layouts=((r"^decoder/kernel$", CONV1X1),),
)

# facebookresearch/mae_st models_mae.py (MaskedAutoencoderViT, --sep_pos_embed --cls_embed)
# + util/video_vit.py (Attention: separate q/k/v Linears; PatchEmbed: Conv3d): learned
# separable tables pos_embed_{spatial,temporal,class} for encoder and decoder, a decoder
# cls token.
MAE_ST = Format(
    name="mae_st",
    source="facebookresearch/mae_st models_mae.py + util/video_vit.py",
    methods=("mae_st",),
    renames=(
        (r"^encoder/blocks_(\d+)/attn/qkv/", r"blocks.\1.attn.{q,k,v}."),
        (r"^decoder/blocks_(\d+)/attn/qkv/", r"decoder_blocks.\1.attn.{q,k,v}."),
        *MAE.renames,
        (r"^(decoder_)?pos_embed/(spatial|temporal)$", r"\1pos_embed_\2"),
        (r"^(decoder_)?pos_embed/cls$", r"\1pos_embed_class"),
    ),
)

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (MAE, TIMM, VIDEOMAE, HF_VITMAE, HF_VIDEOMAE, AUDIOMAE, CROSSMAE, SIMMIM, MAE_ST)
}


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
    split = SPLIT.search(key)
    if split:
        return tuple(key[: split.start()] + n + key[split.end() :] for n in split.groups()), QKV
    for pattern, kind in fmt.layouts:
        if re.match(pattern, path):
            return (key,), kind
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
    if kind == CONV1X1:  # Dense [in, out] -> Conv2d 1x1 [out, in, 1, 1]
        return [x.T[:, :, None, None]]
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
    if kind == CONV1X1:
        x = xs[0]
        return x[:, :, 0, 0].T if x.ndim == 4 and x.shape[2:] == (1, 1) else x
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
    sin-cos position embeddings, SimMIM's relative-position index); {} for models
    without such tables."""
    tables = {key: fn(model) for key, fn in fmt.fixed}
    return {key: np.asarray(t, np.float32) for key, t in tables.items() if t is not None}
