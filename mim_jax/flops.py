"""Analytic FLOPs of one training step, per sample, from a config: what MFU is measured
against (docs/performance.md, "Training step speed").

Convention (the one the issue's reference numbers use; MAE-B/16 58.5, MAE-L/16 124.2,
VideoMAE-B 208.9 GFLOP per sample, reproduced by tests/test_flops.py):
- matmuls only, a multiply-add = 2 FLOPs: every Linear (2 n d_in d_out), the patch or
  tubelet embedding (a Linear over flattened patches), and attention's two batched
  matmuls (q k^T and the weighted sum of v: 4 n_q n_k d);
- LayerNorm, softmax, GELU, residual adds, masking gathers, the loss and the optimizer
  update are not counted (elementwise: O(n d) against the matmuls' O(n d^2));
- each part counts on the tokens it actually sees: the MAE encoder on the visible tokens
  plus cls, the decoder on its tokens incl. mask tokens, heads on the tokens they read;
- backward = 2x forward (the input and the weight gradients), except the embedding of
  the pixels, whose input needs no gradient (1x), and stop-gradient parts (0x);
  training = forward + backward.
XLA's cost analysis of the compiled step counts the elementwise work as well, so it
reads a little higher (a few % at ViT-B sizes, more for tiny models).
"""

import dataclasses

import ml_collections

from mim_jax import masking, methods

# Dense bf16 FLOP/s per chip, by `jax.Device.device_kind`, and where each number comes from.
PEAK_FLOPS = {
    # Measured bf16 matmul ceiling through JAX on one H100 SXM (shared/FACTS.md); NVIDIA's
    # datasheet figure is 989.4 TFLOP/s dense.
    "NVIDIA H100 80GB HBM3": (790e12, "measured jnp.dot ceiling (datasheet 989.4)"),
    "NVIDIA H200": (989.4e12, "NVIDIA datasheet, dense bf16 (not measured here)"),
    "NVIDIA A100-SXM4-80GB": (312e12, "NVIDIA datasheet, dense bf16"),
    "NVIDIA A100-SXM4-40GB": (312e12, "NVIDIA datasheet, dense bf16"),
    # Cloud TPU system architecture pages (cloud.google.com/tpu/docs/v4, /v5e, /v5p, /v6e).
    "TPU v4": (275e12, "cloud.google.com/tpu/docs/v4"),
    "TPU v5 lite": (197e12, "cloud.google.com/tpu/docs/v5e"),
    "TPU v5": (459e12, "cloud.google.com/tpu/docs/v5p"),  # v5p reports "TPU v5"
    "TPU v5p": (459e12, "cloud.google.com/tpu/docs/v5p"),
    "TPU v6 lite": (918e12, "cloud.google.com/tpu/docs/v6e"),
}


def peak_flops(device_kind: str) -> tuple[float | None, str | None]:
    """(dense bf16 FLOP/s, source) of one device of `device_kind`; (None, None) if unknown."""
    return PEAK_FLOPS.get(device_kind, (None, None))


@dataclasses.dataclass
class StepFlops:
    """FLOPs per sample of one training step, by part: name -> (forward, backward)."""

    parts: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)

    def add(self, name: str, forward: float, backward_factor: float = 2.0) -> None:
        f, b = self.parts.get(name, (0.0, 0.0))
        self.parts[name] = (f + forward, b + backward_factor * forward)

    @property
    def forward(self) -> float:
        return sum(f for f, _ in self.parts.values())

    @property
    def backward(self) -> float:
        return sum(b for _, b in self.parts.values())

    @property
    def training(self) -> float:
        """Forward + backward FLOPs per training sample."""
        return self.forward + self.backward


# ---------------------------------------------------------------------------- building blocks
def linear(n: int, d_in: int, d_out: int) -> float:
    """n tokens through a d_in -> d_out Linear."""
    return 2.0 * n * d_in * d_out


def attention_core(n_q: int, n_k: int, d: int) -> float:
    """q k^T and attn @ v over all heads (d = heads x head_dim)."""
    return 4.0 * n_q * n_k * d


def mlp(n: int, d: int, ratio: float) -> float:
    return 2 * linear(n, d, int(d * ratio))


def vit_block(n: int, d: int, ratio: float) -> float:
    """Fused qkv, attention over all n tokens, output projection, MLP."""
    return linear(n, d, 3 * d) + attention_core(n, n, d) + linear(n, d, d) + mlp(n, d, ratio)


def window_block(n: int, d: int, window_tokens: int, ratio: float) -> float:
    """A (shifted-)window block: attention only within windows of `window_tokens`."""
    return (
        linear(n, d, 3 * d)
        + attention_core(n, window_tokens, d)
        + linear(n, d, d)
        + mlp(n, d, ratio)
    )


def cross_block(n_q: int, n_kv: int, d: int, d_kv: int, ratio: float, fused: bool) -> float:
    """Queries [n_q, d] attend to memory [n_kv, d_kv] (models/cross.py), then an MLP."""
    kv = linear(n_kv, d_kv, 2 * d) if fused else 2 * linear(n_kv, d_kv, d)
    return (
        linear(n_q, d, d)
        + kv
        + attention_core(n_q, n_kv, d)
        + linear(n_q, d, d)
        + mlp(n_q, d, ratio)
    )


# --------------------------------------------------------------------------------- per method
def _image_patch(m) -> int:
    return m.patch_size**2 * m.channels


def _mae(m, out: StepFlops) -> None:
    """MAE, ColorMAE and Audio-MAE (global or Swin-V2-CR window decoder)."""
    from mim_jax.models.window import effective_window

    length, d, dd, p = m.num_patches, m.width, m.decoder_width, _image_patch(m)
    if getattr(m, "mask_2d", False):
        t, f = m.grid
        keep = masking.num_kept(t, m.mask_t_prob) * masking.num_kept(f, m.mask_f_prob)
    else:
        keep = masking.num_kept(length, m.mask_ratio)
    out.add("patch_embed", linear(length, p, d), 1.0)
    out.add("encoder", m.depth * vit_block(1 + keep, d, m.mlp_ratio))
    out.add("decoder_embed", linear(1 + keep, d, dd))
    if getattr(m, "decoder_type", "global") == "swin":
        # Patch tokens only (cls dropped); the position-bias MLP runs once per step on the
        # window offsets, independent of the batch, and is left out.
        window, _ = effective_window(m.grid, tuple(m.window), tuple(m.shift))
        wt = window[0] * window[1]
        out.add("decoder", m.decoder_depth * window_block(length, dd, wt, m.mlp_ratio))
        out.add("decoder_pred", linear(length, dd, p))
    else:
        out.add("decoder", m.decoder_depth * vit_block(1 + length, dd, m.mlp_ratio))
        out.add("decoder_pred", linear(1 + length, dd, p))


def _crossmae(m, out: StepFlops) -> None:
    keep, _, pred = m.counts
    length, d, dd, p = m.num_patches, m.width, m.decoder_width, _image_patch(m)
    out.add("patch_embed", linear(length, p, d), 1.0)
    out.add("encoder", m.depth * vit_block(1 + keep, d, m.mlp_ratio))
    maps = m.depth + int(m.use_input)
    out.add("feature_weights", linear((1 + keep) * d, maps, m.decoder_depth))
    block = cross_block(pred, 1 + keep, dd, d, m.mlp_ratio, fused=True)
    out.add("decoder", m.decoder_depth * block)
    out.add("decoder_pred", linear(pred, dd, p))


def _cae(m, out: StepFlops) -> None:
    length, d, p = m.num_patches, m.width, _image_patch(m)
    masked = m.num_masked
    keep = length - masked
    out.add("patch_embed", linear(length, p, d), 1.0)
    out.add("encoder", m.depth * vit_block(1 + keep, d, m.mlp_ratio))
    # The alignment target: the encoder again, on the masked patches, under stop_gradient.
    out.add(
        "target_encoder",
        linear(length, p, d) + m.depth * vit_block(1 + masked, d, m.mlp_ratio),
        0.0,
    )
    block = cross_block(masked, keep + masked, d, d, m.mlp_ratio, fused=False)
    out.add("regressor", m.regressor_depth * block)
    out.add("decoder", m.decoder_depth * vit_block(masked, d, m.mlp_ratio))
    out.add("head", linear(masked, d, p))


def _videomae(m, out: StepFlops) -> None:
    """VideoMAE, and V2 with its running-cell decoder mask."""
    t, h, w = m.grid
    length, d, dd = m.num_tokens, m.width, m.decoder_width
    cube = m.tubelet * m.patch_size**2 * m.channels
    keep = t * (h * w - int(m.mask_ratio * h * w))  # tube masking: the same count per frame
    if m.decoder_mask_ratio:
        cells = masking.running_cell_patterns(m.grid, m.decoder_mask_ratio)
        pred = length - int(cells[0].sum())
    else:
        pred = length - keep
    out.add("patch_embed", linear(length, cube, d), 1.0)
    out.add("encoder", m.depth * vit_block(keep, d, m.mlp_ratio))
    out.add("encoder_to_decoder", linear(keep, d, dd))
    out.add("decoder", m.decoder_depth * vit_block(keep + pred, dd, m.mlp_ratio))
    out.add("head", linear(pred, dd, cube))


def _mae_st(m, out: StepFlops) -> None:
    length, d, dd = m.num_tokens, m.width, m.decoder_width
    cube = m.tubelet * m.patch_size**2 * m.channels
    keep = masking.num_kept(length, m.mask_ratio)
    out.add("patch_embed", linear(length, cube, d), 1.0)
    out.add("encoder", m.depth * vit_block(1 + keep, d, m.mlp_ratio))
    out.add("decoder_embed", linear(keep, d, dd))
    out.add("decoder", m.decoder_depth * vit_block(1 + length, dd, m.mlp_ratio))
    out.add("decoder_pred", linear(1 + length, dd, m.pred_tubelet * m.patch_size**2 * m.channels))


def _simmim(m, out: StepFlops) -> None:
    """ViT (every patch, masked ones as mask tokens) or Swin, then the 1x1-conv head."""
    from mim_jax.models.swin import stage_window

    gh, gw = m.grid
    length, channels = gh * gw, m.channels
    out.add("patch_embed", linear(length, m.patch_size**2 * channels, m.width), 1.0)
    if m.backbone == "vit":
        out.add("encoder", m.depth * vit_block(1 + length, m.width, m.mlp_ratio))
        out.add("decoder", linear(length, m.width, m.stride**2 * channels))
        return
    d, (h, w) = m.width, (gh, gw)
    for i, depth in enumerate(m.depths):
        win, _ = stage_window((h, w), m.window)
        out.add("encoder", depth * window_block(h * w, d, win * win, m.mlp_ratio))
        if i < len(m.depths) - 1:  # patch merging: 2x2 neighbours, 4d -> 2d
            h, w = h // 2, w // 2
            out.add("encoder", linear(h * w, 4 * d, 2 * d))
            d *= 2
    out.add("decoder", linear(h * w, d, m.stride**2 * channels))


def _maskfeat(m, out: StepFlops) -> None:
    length, d = m.num_patches, m.width
    out.add("patch_embed", linear(length, _image_patch(m), d), 1.0)
    out.add("encoder", m.depth * vit_block(1 + length, d, m.mlp_ratio))
    hog_dim = (m.patch_size // m.hog_cell) ** 2 * m.channels * m.hog_bins
    out.add("head", linear(length, d, hog_dim))  # HOG targets: convolutions, not counted


def _classifier(m, out: StepFlops) -> None:
    """Fine-tuning (every part trains) or probing (frozen encoder: forward only)."""
    d = m.width
    if m.backbone == "videomae":
        t, h, w = m.token_grid
        length, patch = t * h * w, m.tubelet * m.patch_size**2 * m.channels
    else:
        length, patch = m.num_patches, _image_patch(m)
    tokens = length
    if m.backbone == "audiomae" and (m.mask_t_prob or m.mask_f_prob):  # training drops rows
        t, f = m.grid
        tokens = masking.num_kept(t, m.mask_t_prob) * masking.num_kept(f, m.mask_f_prob)
    tokens += int(m.has_cls)
    frozen = m.freeze_encoder
    out.add("patch_embed", linear(length, patch, d), 0.0 if frozen else 1.0)
    out.add("encoder", m.depth * vit_block(tokens, d, m.mlp_ratio), 0.0 if frozen else 2.0)
    if m.head == "attentive":  # one query over every token (no MLP); its input is detached
        attn = cross_block(1, tokens, d, d, 0.0, fused=False)
        out.add("attentive_pool", attn)
    # The head's input needs a gradient unless all before it is frozen.
    detached = frozen and m.head != "attentive"
    out.add("head", linear(1, d, m.num_classes), 1.0 if detached else 2.0)


def _online_probe(m, out: StepFlops, num_classes: int) -> None:
    """config.eval.online_probe: the encoder once more on every token, under stop_gradient
    (forward only), and a linear head whose input is detached (weight gradient only)."""
    from mim_jax.methods import maskfeat, simmim, videomae

    if isinstance(m, simmim.SimMIMModel | maskfeat.MaskFeatModel):  # they see every token
        features = out.parts["patch_embed"][0] + out.parts["encoder"][0]
        dim = (
            m.width * 2 ** (len(m.depths) - 1)
            if getattr(m, "backbone", "vit") != "vit"
            else m.width
        )
    else:
        video = hasattr(m, "num_tokens")
        length = m.num_tokens if video else m.num_patches
        patch = (m.tubelet if video else 1) * m.patch_size**2 * m.channels
        tokens = length + int(not isinstance(m, videomae.VideoMAEModel))  # the cls token
        features = linear(length, patch, m.width) + m.depth * vit_block(
            tokens, m.width, m.mlp_ratio
        )
        dim = m.width
    out.add("online_probe_features", features, 0.0)
    out.add("online_probe_head", linear(1, dim, num_classes), 1.0)


def step_flops(config: ml_collections.ConfigDict) -> StepFlops:
    """The analytic FLOPs per sample of one training step of `config` (module docstring)."""
    from mim_jax.methods import (
        cae,
        classifier,
        crossmae,
        mae,
        mae_st,
        maskfeat,
        simmim,
        videomae,
    )

    methods.check_name(config.method)
    method = methods.build(config)
    m = method.model
    out = StepFlops()
    for cls, count in (
        (crossmae.CrossMAEModel, _crossmae),
        (mae.MaskedAutoencoder, _mae),  # also ColorMAE and Audio-MAE
        (cae.ContextAutoencoder, _cae),
        (videomae.VideoMAEModel, _videomae),
        (mae_st.MAESTModel, _mae_st),
        (simmim.SimMIMModel, _simmim),
        (maskfeat.MaskFeatModel, _maskfeat),
        (classifier.ViTClassifier, _classifier),
    ):
        if isinstance(m, cls):
            count(m, out)
            if config.eval.get("online_probe") and hasattr(method, "inner"):
                _online_probe(m, out, config.data.num_classes)
            return out
    # Every model of methods.METHODS is listed above (tests/test_flops.py checks each).
    raise ValueError(f"config.method={config.method!r}: its model has no FLOP count")
