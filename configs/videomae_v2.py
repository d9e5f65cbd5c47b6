"""VideoMAE V2 (Wang et al., "VideoMAE V2: Scaling Video Masked Autoencoders with Dual
Masking", CVPR 2023): VideoMAE plus a running-cell decoder mask, so the decoder
reconstructs only half of the positions.

Default: the small VideoMAE of configs/videomae.py with dual masking, on the embedded
moving Fashion-MNIST:

    python -m mim_jax.main --config=configs/videomae_v2.py --workdir=workdirs/videomae_v2

ViT-g/14 recipe (OpenGVLab/VideoMAEv2 scripts/pretrain/vit_g_hybrid_pt.sh) on Kinetics-400:

    python -m mim_jax.main --config=configs/videomae_v2.py:variant=g/14,data=k400 \
        --config.data.root=/data/k400 --workdir=workdirs/videomae_v2_g14

Args: variant (S/16, B/16, L/16, H/16, g/14), data (k400, ssv2, folder, array_record, synthetic).
"""

from configs import videomae

# (patch, width, depth, heads, decoder width, decoder heads): models/modeling_pretrain.py.
# V2's huge decoder is 512 wide (V1's is 640).
VARIANTS = {
    "S/16": (16, 384, 12, 6, 192, 3),
    "B/16": (16, 768, 12, 12, 384, 6),
    "L/16": (16, 1024, 24, 16, 512, 8),
    "H/16": (16, 1280, 32, 16, 512, 8),
    "g/14": (14, 1408, 40, 16, 512, 8),
}
# scripts/pretrain/vit_{b,l,h,g}_hybrid_pt.sh: (GPUs, base lr, warmup epochs, epochs, clip);
# 32 videos per GPU, num_sample 4, lr x (videos per step) / 256, min_lr 1e-5 likewise.
RECIPES = {
    "S/16": (32, 1e-3, 20.0, 200.0, None),  # no official S script: B's recipe
    "B/16": (32, 1e-3, 20.0, 200.0, None),
    "L/16": (48, 1e-3, 30.0, 300.0, None),
    "H/16": (64, 1e-3, 30.0, 300.0, None),
    "g/14": (64, 6e-4, 30.0, 300.0, 0.02),
}


def get_config(arg: str | None = None):
    config = videomae.get_config(_strip_variant(arg))
    config.method = "videomae_v2"
    m = config.model
    m.decoder_mask_ratio = 0.5  # --decoder_mask_type run_cell --decoder_mask_ratio 0.5
    m.decoder_depth = 4  # all V2 scripts
    variant = videomae.common.parse_arg(arg, variant="", data="").variant
    if variant:
        videomae.set_variant(config, variant, VARIANTS)
        if variant == "g/14":
            m.mlp_ratio = 48 / 11  # vit_giant_patch14: hidden 6144
        gpus, lr, warmup, epochs, clip = RECIPES[variant]
        videos = 32 * gpus
        config.data.num_samples = 4  # --num_sample 4: four crops of one decoded clip
        config.data.samples_share_frames = True  # HybridVideoMAE: one temporal sample
        config.batch_size = videos * 4  # clips per step; the lr counts videos (optim.peak_lr)
        config.total_epochs = epochs
        config.optim.update(base_lr=lr, lr_base_batch=256, warmup_epochs=warmup)
        config.optim.update(min_lr=1e-5 * videos / 256, b1=0.9, b2=0.95, weight_decay=0.05)
        config.optim.grad_clip = clip
    return config


def _strip_variant(arg: str | None) -> str:
    """The arg for configs/videomae.py: V2 variants are applied here instead."""
    parsed = videomae.common.parse_arg(arg, variant="", data="")
    if parsed.variant and parsed.variant not in VARIANTS:
        raise ValueError(f"variant={parsed.variant!r}; valid: {sorted(VARIANTS)}")
    # V1's recipe for a variant that exists there, else B/16's; both are replaced above.
    base = parsed.variant if parsed.variant in videomae.VARIANTS else "B/16"
    parts = [f"data={parsed.data}"] if parsed.data else []
    if parsed.variant:
        parts.append(f"variant={base}")
    return ",".join(parts)
