"""Decoder activations of an unpooling network: sparse after unpooling, dense after (de)convolution.

Noh et al. (2015, Fig. 4) show what DeconvNet's decoder does: each unpooling puts the values back
at the max-pooling switches (a sparse map that keeps the encoder's boundary locations), and the
following deconvolution layers densify it again. :func:`decoder_activations` records this with
forward hooks on every max-unpooling call and on every convolution / transposed-convolution block
after the first unpooling, and summarises each stage (mean activation, fraction of non-zeros, the
channel-mean map and the map of its strongest channel). Works for any model built from
:class:`segscope.models.layers.unpool.MaxUnpool2d` (or ``nn.MaxUnpool2d``): DeconvNet, SegNet,
SegNet-Basic.

References
----------
.. [1] H. Noh, S. Hong, B. Han, "Learning deconvolution network for semantic segmentation",
   ICCV 2015, section 3.1 and Fig. 4.
.. [2] V. Badrinarayanan, A. Kendall, R. Cipolla, "SegNet", TPAMI 2017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from segscope.models.layers.unpool import MaxUnpool2d

UNPOOLING = (MaxUnpool2d, nn.MaxUnpool2d)
CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d)
UNPOOLING_MODELS = ("deconvnet_vgg16", "segnet_vgg16", "segnet_basic")  # the registered ones


@dataclass(frozen=True)
class StageActivation:
    """One decoder stage's output, summarised over the image's footprint (padding cropped away)."""

    name: str  # "unpool5", "deconv5-1", ..., or "input of unpool5"
    module: str  # qualified module name in the model
    kind: str  # "input", "unpool", "deconv" or "conv"
    shape: tuple[int, int, int]  # (C, H, W) of the full map
    mean: float  # mean activation
    nonzero: float  # fraction of activations != 0
    channel_mean: np.ndarray  # (h, w) mean over channels
    top_channel: int  # channel with the largest mean activation
    top_map: np.ndarray  # (h, w) that channel


def has_unpooling(model: nn.Module) -> bool:
    """Whether ``model`` contains a max-unpooling layer."""
    return any(isinstance(m, UNPOOLING) for m in model.modules())


def _conv_blocks(model: nn.Module) -> dict[nn.Module, tuple[str, str]]:
    """Every convolution, or the ``nn.Sequential`` it opens (conv + BN + ReLU): module -> (name, kind)."""
    modules = dict(model.named_modules())
    blocks: dict[nn.Module, tuple[str, str]] = {}
    for name, module in modules.items():
        if not isinstance(module, CONVOLUTIONS):
            continue
        kind = "deconv" if isinstance(module, nn.ConvTranspose2d) else "conv"
        parent_name = name.rpartition(".")[0]
        parent = modules.get(parent_name)
        if parent_name and isinstance(parent, nn.Sequential) and parent[0] is module:
            blocks[parent] = (parent_name, kind)  # the block's output: after its BN / activation
        else:
            blocks[module] = (name, kind)
    return blocks


@torch.no_grad()
def decoder_activations(
    model: nn.Module, x: torch.Tensor, *, image_size: tuple[int, int] | None = None
) -> list[StageActivation]:
    """Run ``x`` (``(1, C, H, W)``) through ``model`` in eval mode and summarise its decoder stages.

    Stages, in execution order: the input of the first unpooling, then every unpooling and every
    convolution / transposed-convolution block that runs after it. Unpooling ``i`` counts down to 1
    (``unpool5`` first for five poolings, as in the papers) and the blocks after it are
    ``deconv<i>-<j>`` / ``conv<i>-<j>``. A model that pads its input (DeconvNet pads to 224) is
    summarised over the part of each map covering the ``image_size`` (default: ``x``'s size).
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image as a (1, C, H, W) tensor, got {tuple(x.shape)}")
    unpools = [m for m in model.modules() if isinstance(m, UNPOOLING)]
    if not unpools:
        raise ValueError(f"{type(model).__name__} has no max-unpooling layer")
    names = {m: n for n, m in model.named_modules()}
    first_conv = next((m for m in model.modules() if isinstance(m, CONVOLUTIONS)), None)
    image_size = tuple(image_size or x.shape[-2:])
    entered: list[tuple[int, int]] = []  # spatial size entering the first convolution (padded input)
    records: list[tuple[str, str, torch.Tensor, int]] = []  # (kind, module, summary, unpool count)
    seen_unpools = [0]

    def summarise(t: torch.Tensor) -> dict:
        t = t.detach()[0].float()  # (C, H, W)
        full = entered[0] if entered else image_size
        h = min(t.shape[1], math.ceil(t.shape[1] * image_size[0] / full[0]))
        w = min(t.shape[2], math.ceil(t.shape[2] * image_size[1] / full[1]))
        crop = t[:, :h, :w]
        per_channel = crop.mean(dim=(1, 2))
        top = int(per_channel.argmax())
        return dict(
            shape=tuple(t.shape),
            mean=float(crop.mean()),
            nonzero=float((crop != 0).float().mean()),
            channel_mean=crop.mean(0).cpu().numpy(),
            top_channel=top,
            top_map=crop[top].cpu().numpy(),
        )

    def on_unpool(module, inputs, output):
        if seen_unpools[0] == 0:
            records.append(("input", names[module], summarise(inputs[0]), 0))
        seen_unpools[0] += 1
        records.append(("unpool", names[module], summarise(output), seen_unpools[0]))

    def on_block(name: str, kind: str):
        def hook(module, inputs, output):
            if seen_unpools[0] > 0 and isinstance(output, torch.Tensor) and output.ndim == 4:
                records.append((kind, name, summarise(output), seen_unpools[0]))

        return hook

    handles = [m.register_forward_hook(on_unpool) for m in set(unpools)]
    handles += [m.register_forward_hook(on_block(n, k)) for m, (n, k) in _conv_blocks(model).items()]
    if first_conv is not None:
        handles.append(
            first_conv.register_forward_pre_hook(
                lambda m, inputs: entered.append(tuple(inputs[0].shape[-2:])) if not entered else None
            )
        )
    was_training = model.training
    try:
        model.eval()
        model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    total = seen_unpools[0]
    stages, within = [], 0
    for kind, module, summary, count in records:
        level = total - count + 1  # unpool5 ... unpool1
        if kind == "input":
            name = f"input of unpool{total}"
        elif kind == "unpool":
            name, within = f"unpool{level}", 0
        else:
            within += 1
            name = f"{kind}{level}-{within}"
        stages.append(StageActivation(name=name, module=module, kind=kind, **summary))
    return stages


def segmenter_activations(segmenter, image: np.ndarray) -> list[StageActivation]:
    """:func:`decoder_activations` of a loaded deep segmenter on one ``(H, W, C)`` uint8 image.

    The image is prepared as the segmenter's own inference does (its resize, its mean/std); a
    classical method or a model without unpooling is refused with one line."""
    from segscope.data.images import convert_channels
    from segscope.data.torch_dataset import image_to_tensor, resize_pair
    from segscope.errors import UserError

    base = getattr(segmenter, "base", segmenter)  # a run with post-processing stages
    model = getattr(base, "model", None)
    if not isinstance(model, nn.Module):
        raise UserError(
            f"{base.name} is a {getattr(base, 'family', 'classical')} method, not a network: explain "
            f"unpooling needs a model with max-unpooling ({', '.join(UNPOOLING_MODELS)})"
        )
    if not has_unpooling(model):
        raise UserError(
            f"model {base.name} has no max-unpooling layer: explain unpooling needs a DeconvNet/SegNet-"
            f"style model ({', '.join(UNPOOLING_MODELS)})"
        )
    channels = int(getattr(base, "in_channels", image.shape[-1]))
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] != channels:
        image = convert_channels(image, channels)
    resize = getattr(getattr(base, "config", None), "resize", None)
    if resize:
        image = resize_pair(image, None, resize)[0]
    device = next(model.parameters()).device
    x = image_to_tensor(image, base.mean, base.std).unsqueeze(0).to(device)
    try:
        return decoder_activations(model, x, image_size=image.shape[:2])
    except ValueError as exc:  # e.g. an image smaller than the pooling windows
        raise UserError(f"{base.name}: {str(exc).splitlines()[0]}") from None
