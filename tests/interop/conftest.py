"""Shared helpers for the interop tests: tiny configs, and torch/timm/transformers imports
that skip the test when the `[interop]` extra is not installed."""

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

import numpy as np
import pytest

from configs import finetune, mae, videomae

# Why a test is skipped without the extra (torch, timm, transformers).
INTEROP = "needs the [interop] extra: pip install -e '.[interop]'"


def tiny_mae(**model):
    """MAE on 32x32 RGB, 8x8 patches (16 tokens), 2 encoder and 1 decoder blocks."""
    config = mae.get_config(None)
    config.data.image_size, config.data.channels = 32, 3
    config.data.mean, config.data.std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    config.model.update({**dict(patch_size=8, width=64, depth=2, num_heads=4), **model})
    config.model.update({**dict(decoder_width=32, decoder_depth=1, decoder_heads=4), **model})
    return config


def tiny_videomae(**model):
    """VideoMAE on 4 RGB frames of 32x32, 2x8x8 tubelets (32 tokens), ImageNet mean/std."""
    config = videomae.get_config(None)
    config.data.image_size, config.data.channels, config.data.num_frames = 32, 3, 4
    config.data.mean, config.data.std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    config.model.update(patch_size=8, width=64, depth=2, num_heads=4, mask_ratio=0.75)
    config.model.update({**dict(decoder_width=32, decoder_depth=1, decoder_heads=4), **model})
    return config


def tiny_classifier(**model):
    """Fine-tuning classifier (global pool + fc_norm) on 32x32 RGB, 5 classes."""
    config = finetune.get_config(None)
    config.data.image_size, config.data.channels, config.data.num_classes = 32, 3, 5
    config.model.update({**dict(patch_size=8, width=64, depth=2, num_heads=4), **model})
    return config


def random_params(method, config, seed: int = 0):
    """The model's own random init plus N(0, 0.02) on every leaf, so that no zero bias or
    unit LayerNorm scale hides a wrong mapping while activations stay realistic."""
    import jax
    import jax.numpy as jnp

    from mim_jax import config_lib

    batch = {"image": jnp.zeros((1, *config_lib.input_shape(config.data)), jnp.float32)}
    key = jax.random.key(seed)
    if getattr(method, "stateful", False):
        params = method.init_variables(key, batch)["params"]
    else:
        params = method.init(key, batch)
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    noisy = [np.asarray(x, np.float32) + 0.02 * rng.standard_normal(x.shape) for x in leaves]
    return jax.tree.unflatten(treedef, [x.astype(np.float32) for x in noisy])


def rel_err(ours, theirs) -> float:
    """max |ours - theirs| / max |theirs|."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    return float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-30))


class _Unavailable(type):
    """Any attribute of the absent torchvision: a class that raises when called."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Unavailable(name, (), {})

    def __call__(cls, *args, **kwargs):
        raise RuntimeError(f"torchvision.{cls.__name__} is not available in this test")


class _AbsentModule(types.ModuleType):
    """A torchvision (sub)module whose every attribute is `_Unavailable`."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Unavailable(name, (), {})


class _AbsentFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _AbsentModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


@contextlib.contextmanager
def _without_torchvision():
    """timm imports torchvision at import time (data transforms, FrozenBatchNorm2d), but its
    VisionTransformer never uses it. PyPI's torchvision wheels are CUDA builds whose ops fail
    to load next to CPU torch, so these tests import timm with torchvision modules that raise
    if used, then drop them so transformers does not see a torchvision."""
    sys.meta_path.insert(0, finder := _AbsentFinder())
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
            del sys.modules[name]


def import_timm_vit():
    """timm.models.vision_transformer, or skip when timm/torch are not installed."""
    pytest.importorskip("torch", reason=INTEROP)
    if importlib.util.find_spec("timm") is None:
        pytest.skip(INTEROP)
    try:
        import timm.models.vision_transformer as vit

        return vit
    except (ImportError, RuntimeError):  # no torchvision, or one whose C++ ops fail to load
        for name in [n for n in sys.modules if n.split(".")[0] in ("torchvision", "timm")]:
            del sys.modules[name]
    with _without_torchvision():
        import timm.models.vision_transformer as vit
    return vit
