"""MaskFeat (Wei et al., "Masked Feature Prediction for Self-Supervised Visual
Pre-Training", CVPR 2022), the image ViT.

Default: a small MaskFeat on the embedded Fashion-MNIST (32 px, 8 px patches of 2x2 HOG
cells), with kNN / linear-probe evaluation against its random init and raw pixels:

    python -m mim_jax.main --config=configs/maskfeat.py --workdir=workdirs/maskfeat_fmnist

ImageNet-1k recipe (facebookresearch/SlowFast configs/masked_ssl/in1k_VIT_B_MaskFeat_PT.yaml):

    python -m mim_jax.main --config=configs/maskfeat.py:variant=B/16 --workdir=W

Args: variant (B/16), data (fashion_mnist, synthetic, imagenet2012, folder, array_record).
"""

from configs import common

VARIANTS = ("B/16",)


def _imagenet_recipe(config) -> None:
    config.model.update(patch_size=16, width=768, depth=12, num_heads=12, drop_path=0.0)
    common.set_imagenet(config, 224)
    config.data.crop_scale = (0.5, 1.0)  # RandomResizedCrop(224, scale=(0.5, 1.0)) + flip
    config.batch_size = 2048  # 256 per shard x 8 shards
    config.total_epochs = 300.0  # the yaml's schedule (the released checkpoint ran 1600)
    # lr 2e-4 x shards (1.6e-3 at 2048), 30 warmup epochs from 1e-6, cosine to 1e-6;
    # AdamW (0.9, 0.999), wd 0.05 (not on 1-D params), grad-norm clip 0.02.
    config.optim.update(base_lr=2e-4, lr_base_batch=256, warmup_epochs=30.0, min_lr=1e-6)
    config.optim.update(warmup_base_lr=1e-6 * 256 / 2048)  # 1e-6 at batch 2048
    config.optim.update(b1=0.9, b2=0.999, weight_decay=0.05, grad_clip=0.02)


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="", data="")
    config = common.get_base_config()
    config.method = "maskfeat"
    m = config.model
    m.update(mask_ratio=0.4, hog_bins=9, hog_cell=8, hog_window=0, mlp_ratio=4.0)
    if arg.variant:
        if arg.variant not in VARIANTS:
            raise ValueError(f"variant={arg.variant!r}; valid: {list(VARIANTS)}")
        _imagenet_recipe(config)
    else:
        # Embedded default: images resized to 32 px, 8 px patches (16 tokens) of 2x2 HOG
        # cells of 4 px (the official 2x2 cells per patch); 6 of 16 patches block-masked.
        config.data.image_size = 32
        m.update(patch_size=8, hog_cell=4, width=128, depth=4, num_heads=4, drop_path=0.0)
        config.data.crop_scale = (0.5, 1.0)
        config.optim.update(base_lr=2e-3, lr_base_batch=256, warmup_epochs=1.0)
        config.optim.update(b1=0.9, b2=0.999, weight_decay=0.05, grad_clip=1.0)
        common.set_small_default(config, epochs=5.0, every=1.0)
    common.set_image_data(config, arg.data, arg.variant)
    return config
