"""CAE (Chen et al., "Context Autoencoder for Self-Supervised Representation Learning").

Default: a small CAE on the embedded Fashion-MNIST (minutes on a CPU), with kNN /
linear-probe evaluation against its random init and raw pixels:

    python -m mim_jax.main --config=configs/cae.py --workdir=workdirs/cae_fmnist

ImageNet-1k recipe (Atten4Vis/CAE scripts/cae_base_800e.sh), via TFDS:

    python -m mim_jax.main --config=configs/cae.py:variant=B/16 --workdir=W

The decoder predicts per-patch normalised pixels, not the official DALL-E tokenizer codes
(those need the tokenizer's weights); everything else is the official recipe.

Args: variant (B/16), data (fashion_mnist, synthetic, imagenet2012, folder, array_record).
"""

from configs import common

VARIANTS = ("B/16",)


def _imagenet_recipe(config) -> None:
    m = config.model
    # cae_base_patch16_224_8k_vocab: ViT-B, regressor 4, decoder 4, layer scale 0.1 in all.
    m.update(patch_size=16, width=768, depth=12, num_heads=12, drop_path=0.1)
    m.update(num_masked=98, min_block_patches=16)  # --num_mask_patches 98, BEiT blocks >= 16
    common.set_imagenet(config, 224)
    config.data.crop_scale = (0.08, 1.0)  # RandomResizedCrop default scale (datasets.py)
    config.batch_size = 2048  # 8 GPUs x 4 nodes x 64
    config.total_epochs = 800.0
    # lr 1.5e-3 at batch 2048 (absolute in run_pretraining.py; scaled linearly here), 20
    # warmup epochs from 0, cosine to 1e-5; AdamW (0.9, 0.999), wd 0.05, grad-norm clip 3.
    config.optim.update(base_lr=1.5e-3, lr_base_batch=2048, warmup_epochs=20.0, min_lr=1e-5)
    config.optim.update(b1=0.9, b2=0.999, weight_decay=0.05, grad_clip=3.0)


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="", data="")
    config = common.get_base_config()
    config.method = "cae"
    m = config.model
    m.update(regressor_depth=4, decoder_depth=4, layer_scale=0.1, align_weight=2.0)
    m.update(mlp_ratio=4.0, norm_pix_loss=True)
    if arg.variant:
        if arg.variant not in VARIANTS:
            raise ValueError(f"variant={arg.variant!r}; valid: {list(VARIANTS)}")
        _imagenet_recipe(config)
    else:
        # Embedded default: 28x28 grey images, 7x7 patches, 8 of 16 masked in blocks of >= 2.
        m.update(patch_size=7, width=128, depth=4, num_heads=4, drop_path=0.0)
        m.update(regressor_depth=2, decoder_depth=2, num_masked=8, min_block_patches=2)
        config.data.crop_scale = (0.6, 1.0)
        config.optim.update(base_lr=2e-3, lr_base_batch=256, warmup_epochs=1.0)
        config.optim.update(b1=0.9, b2=0.999, weight_decay=0.05, grad_clip=3.0)
        common.set_small_default(config, epochs=8.0, every=2.0)
    common.set_image_data(config, arg.data, arg.variant)
    return config
