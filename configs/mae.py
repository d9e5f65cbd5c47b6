"""MAE (He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022).

Default: a small MAE on the embedded Fashion-MNIST that learns a useful representation in
minutes on a CPU, with kNN / linear-probe evaluation against its random init and raw pixels:

    python -m mim_jax.main --config=configs/mae.py --workdir=workdirs/mae_fmnist

ImageNet-1k recipe (facebookresearch/mae PRETRAIN.md + main_pretrain.py), data via TFDS:

    python -m mim_jax.main --config=configs/mae.py:variant=B/16 --workdir=workdirs/mae_b16

ImageNet from an unpacked folder (<root>/train/<wnid>/*.JPEG, <root>/val/<wnid>/*.JPEG) or
from ArrayRecord shards written by `python -m mim_jax.data.convert`:

    python -m mim_jax.main --config=configs/mae.py:variant=B/16,data=folder \
        --config.data.root=/data/imagenet --workdir=workdirs/mae_b16

Args: variant (B/16, L/16, H/14), data (fashion_mnist, synthetic, imagenet2012, folder,
array_record).
"""

from configs import common

# (patch, width, depth, heads): models_mae.py mae_vit_{base,large,huge}_patch*_dec512d8b.
VARIANTS = {
    "B/16": (16, 768, 12, 12),
    "L/16": (16, 1024, 24, 16),
    "H/14": (14, 1280, 32, 16),
}

# The embedded default's encoder: 28x28 grey images, 7x7 patches (16 tokens), a small ViT.
SMALL_MODEL = dict(patch_size=7, width=128, depth=4, num_heads=4)


def _imagenet_recipe(config, variant: str) -> None:
    patch, width, depth, heads = VARIANTS[variant]
    config.model.update(
        patch_size=patch,
        width=width,
        depth=depth,
        num_heads=heads,
        decoder_width=512,  # decoder 512-d x 8 blocks x 16 heads (models_mae.py)
        decoder_depth=8,
        decoder_heads=16,
    )
    common.set_imagenet(config, 224)
    config.data.crop_scale = (0.2, 1.0)  # RandomResizedCrop(224, scale=(0.2, 1.0)) + flip
    config.batch_size = 4096  # PRETRAIN.md: effective batch 4096
    config.total_epochs = 800.0
    config.optim.update(base_lr=1.5e-4, lr_base_batch=256, min_lr=0.0, warmup_epochs=40.0)
    config.optim.update(b1=0.9, b2=0.95, weight_decay=0.05)  # main_pretrain.py
    if variant == "H/14":
        # Params + AdamW state are 7.3 GiB: FSDP over 8 chips leaves 73% of a v5e chip's
        # 16 GiB free at batch 4096 on v5e-256 (vs 37% data-parallel); docs/scaling.md.
        config.mesh.fsdp = 8


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="", data="")
    config = common.get_base_config()
    config.method = "mae"
    config.model.mask_ratio = 0.75  # main_pretrain.py --mask_ratio 0.75
    config.model.norm_pix_loss = True  # PRETRAIN.md uses --norm_pix_loss
    config.model.mlp_ratio = 4.0

    if arg.variant:
        if arg.variant not in VARIANTS:
            raise ValueError(f"variant={arg.variant!r}; valid: {sorted(VARIANTS)}")
        _imagenet_recipe(config, arg.variant)
    else:
        # Embedded default: 28x28 grey images, 7x7 patches (16 tokens, 4 visible), a small
        # ViT. Sized for ~9 minutes of training on 2 CPU cores; lr, crop scale and the
        # mean-pooled eval features were chosen by measured kNN / linear-probe accuracy.
        config.model.update(
            **SMALL_MODEL,
            decoder_width=64,
            decoder_depth=2,
            decoder_heads=4,
        )
        config.data.crop_scale = (0.6, 1.0)
        config.optim.update(base_lr=2e-3, warmup_epochs=1.0, weight_decay=0.05)
        common.set_small_default(config, epochs=12.0, every=2.0)

    common.set_image_data(config, arg.data, arg.variant)
    return config
