"""Make a trained model cheaper to run without changing what it computes (beyond rounding).

* :func:`fold_batchnorm` folds every eval-mode BatchNorm into the convolution (or transposed convolution,
  as DeconvNet's decoder) before it (``torch.nn.utils.fusion.fuse_conv_bn_eval`` does the arithmetic),
  for the ways models write that pair: consecutive entries of an ``nn.Sequential`` (also a block ending
  in a convolution followed by a BatchNorm, as a depthwise-separable conv) and torchvision ResNet blocks'
  ``convN``/``bnN`` attributes. torch.fx's fuser would do this too, but needs a traceable forward, which
  models that pad odd sizes are not.
* :class:`InferenceModel` runs the folded model in channels-last memory format (oneDNN's fast path on
  CPU) under ``torch.inference_mode``, optionally in bfloat16 autocast (about 2x faster on CPUs with
  AVX-512 BF16 / AMX; logits change by rounding only).
  With ``compile=True`` the folded model goes through ``torch.compile`` (TorchInductor) with *freezing*:
  weights become constants, oneDNN prepacks them and fuses convolution + activation, which on the 2-core
  CPU ran FCN-ResNet50 about 1.8x faster than the eager folded model (``benchmarks/inference_peers.py``).
  The first call at each input shape compiles (tens of seconds), so it pays off for many images of one
  size (tiles, a video, a folder), not for one image.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode) with each Conv2d/ConvTranspose2d -> BatchNorm2d pair folded into one
    convolution."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                conv, bn = module._modules[a], module._modules[b]
                if _foldable(conv, bn):
                    module._modules[a] = _fuse(conv, bn)
                    module._modules[b] = nn.Identity()
                elif isinstance(conv, nn.Sequential) and len(conv) and _foldable(conv[-1], bn):
                    conv[-1] = _fuse(conv[-1], bn)  # a block ending in a conv (depthwise-separable)
                    module._modules[b] = nn.Identity()
        for i in range(1, 4):  # torchvision ResNet: conv1/bn1, conv2/bn2, conv3/bn3
            conv, bn = getattr(module, f"conv{i}", None), getattr(module, f"bn{i}", None)
            if _foldable(conv, bn):
                setattr(module, f"conv{i}", _fuse(conv, bn))
                setattr(module, f"bn{i}", nn.Identity())
    return model


def _fuse(conv: nn.Module, bn: nn.BatchNorm2d) -> nn.Module:
    return fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))


def _foldable(conv: object, bn: object) -> bool:
    return (
        isinstance(conv, nn.Conv2d | nn.ConvTranspose2d)
        and isinstance(bn, nn.BatchNorm2d)
        and bn.track_running_stats
        and conv.out_channels == bn.num_features
    )


class InferenceModel(nn.Module):
    """Wrap a trained model for fast CPU/GPU inference: folded BN, channels-last, optional bf16.

    ``dtype=torch.bfloat16`` runs under autocast and returns float32 logits.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = True,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.model = fold_batchnorm(model)
        self.dtype = dtype
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.run = (
            torch.compile(self.model, dynamic=False, options={"freezing": True}) if compile else self.model
        )
        for attr in ("output_margin", "valid_input_size"):
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        device = x.device.type
        with torch.autocast(device, dtype=self.dtype, enabled=self.dtype != torch.float32):
            return self.run(x).float()
