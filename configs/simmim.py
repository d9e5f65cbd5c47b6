"""SimMIM (Xie et al., "SimMIM: a Simple Framework for Masked Image Modeling", CVPR 2022).

Default: a small SimMIM ViT on the embedded Fashion-MNIST (minutes on a CPU), with
kNN / linear-probe evaluation against its random init and raw pixels:

    python -m mim_jax.main --config=configs/simmim.py --workdir=workdirs/simmim_fmnist

ImageNet-1k recipes (microsoft/SimMIM configs/*800ep*.yaml, main_simmim.py), via TFDS:

    python -m mim_jax.main --config=configs/simmim.py:variant=ViT-B/16 --workdir=W
    python -m mim_jax.main --config=configs/simmim.py:variant=Swin-B --workdir=W

Args: variant (ViT-B/16, Swin-B), data (fashion_mnist, synthetic, imagenet2012, folder,
array_record).
"""

from configs import common

VARIANTS = ("ViT-B/16", "Swin-B")


def _imagenet_recipe(config, variant: str) -> None:
    m = config.model
    if variant == "ViT-B/16":
        # simmim_pretrain__vit_base__img224__800ep.yaml: BEiT-style ViT-B, no absolute
        # position embedding, one shared relative position bias, layer scale 0.1.
        m.update(backbone="vit", patch_size=16, width=768, depth=12, num_heads=12)
        m.update(layer_scale=0.1, rel_pos_bias=True, pos_embed="none", drop_path=0.1)
        size = 224
    else:
        # simmim_pretrain__swin_base__img192_window6__800ep.yaml: Swin-B, window 6 at 192 px.
        m.update(backbone="swin", patch_size=4, width=128, depths=(2, 2, 18, 2))
        m.update(heads=(4, 8, 16, 32), window=6, drop_path=0.0)
        size = 192
        config.eval.features = "mean"  # Swin has no cls token: its final map averaged
    m.update(mask_patch_size=32, mask_ratio=0.6)  # data_simmim.py MaskGenerator
    common.set_imagenet(config, size)
    config.data.crop_scale = (0.67, 1.0)  # data_simmim.py RandomResizedCrop scale
    config.batch_size = 2048  # README: 16 GPUs x 128
    config.total_epochs = 800.0
    # lr = 1e-4 x batch / 512, warmup 10 epochs linearly from 5e-7 (same scaling), then
    # constant until epoch 700 and x0.1 after (multistep); AdamW (0.9, 0.999), wd 0.05,
    # cls token (and Swin's mask token and bias tables) undecayed, grad-norm clip 5.
    config.optim.update(base_lr=1e-4, lr_base_batch=512, warmup_epochs=10.0)
    config.optim.update(warmup_base_lr=5e-7, schedule="multistep", milestone_epochs=(700.0,))
    config.optim.update(b1=0.9, b2=0.999, weight_decay=0.05, grad_clip=5.0)


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="", data="")
    config = common.get_base_config()
    config.method = "simmim"
    if arg.variant:
        if arg.variant not in VARIANTS:
            raise ValueError(f"variant={arg.variant!r}; valid: {list(VARIANTS)}")
        _imagenet_recipe(config, arg.variant)
    else:
        # Embedded default: 28x28 grey images, 7x7 patches (16 tokens), a small ViT. The
        # mask cell is one patch here (a 2x2-patch cell would be a quarter of the image).
        m = config.model
        m.update(backbone="vit", patch_size=7, width=128, depth=4, num_heads=4)
        m.update(layer_scale=0.1, rel_pos_bias=True, pos_embed="none", drop_path=0.0)
        m.update(mask_patch_size=7, mask_ratio=0.6)
        config.data.crop_scale = (0.67, 1.0)
        config.optim.update(base_lr=4e-3, lr_base_batch=512, warmup_epochs=1.0)
        config.optim.update(b1=0.9, b2=0.999, weight_decay=0.05, grad_clip=5.0)
        common.set_small_default(config, epochs=5.0, every=1.0)
    common.set_image_data(config, arg.data, arg.variant)
    return config
