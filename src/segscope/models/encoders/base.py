"""The encoder contract and backbone weight loading (torchvision weights API or a local file).

Every encoder maps ``(N, C_in, H, W)`` images to a list of feature maps ordered from high to low
resolution, and declares ``out_channels`` and ``strides`` (input pixels per feature pixel) of
those maps, so decoders are written against numbers, not against a particular backbone.

Weights (``pretrained`` in the builders):

* ``False`` / ``None``: random initialisation (what tests use);
* ``True``: torchvision's ``"DEFAULT"`` ImageNet weights (downloaded by torchvision on first use);
* a torchvision weights name such as ``"IMAGENET1K_V1"``;
* a local file path (``.pth``, ``.pt``, ``.bin`` or ``.safetensors``) holding a state dict in
  torchvision's key format, e.g. the file torchvision caches under ``~/.cache/torch/hub``;
* a segscope run (its directory or its weights file): the weights under ``encoder.`` are
  taken, so an encoder trained on one dataset starts the training on another (transfer learning).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from segscope.errors import UserError

WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
Pretrained = bool | str | Path | None


class Encoder(nn.Module, ABC):
    """Base class of the encoder contract.

    Subclasses set ``out_channels`` and ``strides`` (one entry per returned map, high to low
    resolution) and implement ``forward(x) -> list[Tensor]``.
    """

    out_channels: tuple[int, ...]
    strides: tuple[int, ...]

    @abstractmethod
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(N, C_in, H, W)`` -> feature maps ``(N, out_channels[i], H / strides[i], W / strides[i])``."""


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.pth``/``.pt``/``.bin`` (``torch.load``, tensors only) or ``.safetensors``.

    A checkpoint that nests the weights under ``"state_dict"`` or ``"model"`` is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any reader failure is the file's fault
        raise UserError(f"weights file {path} could not be read: {exc}") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"weights file {path} does not hold a state dict of tensors")
    return state


def is_weight_file(value: str | Path) -> bool:
    """Whether ``value`` names a local file (rather than a torchvision weights name)."""
    path = Path(value)
    return path.suffix in WEIGHT_FILE_SUFFIXES or path.exists() or len(path.parts) > 1


def check_pretrained_width(pretrained: Pretrained, width: float) -> None:
    """Refuse torchvision's ImageNet weights for a width-reduced network (before any download)."""
    if pretrained and width != 1.0 and not is_weight_file(str(pretrained)):
        raise ValueError(f"torchvision's ImageNet weights need width=1.0, got width={width}")


def backbone_state_dict(arch: str, pretrained: Pretrained) -> dict[str, torch.Tensor] | None:
    """The torchvision-format state dict of backbone ``arch`` that ``pretrained`` asks for, or ``None``.

    ``arch`` is a torchvision model name (``"vgg16"``, ``"vgg16_bn"``, ``"resnet50"``...).
    """
    if pretrained is None or pretrained is False:
        return None
    if isinstance(pretrained, str | Path) and Path(pretrained).is_dir():
        from segscope.run_config import weights_path

        pretrained = weights_path(pretrained)
    if isinstance(pretrained, str | Path) and is_weight_file(pretrained):
        return encoder_part(load_state_dict_file(pretrained))
    import torchvision

    name = "DEFAULT" if pretrained is True else str(pretrained)
    try:
        weights = torchvision.models.get_model_weights(arch)[name]
    except KeyError:
        names = list(torchvision.models.get_model_weights(arch).__members__)
        raise UserError(
            f"pretrained={pretrained!r} is neither a weights file ({', '.join(WEIGHT_FILE_SUFFIXES)}) "
            f"nor a torchvision weights name for {arch} ({', '.join(names)})"
        ) from None
    return weights.get_state_dict(progress=True)


def encoder_part(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``encoder.*`` entries of a whole segscope model's state dict, prefix removed; else ``state``."""
    prefix = "encoder."
    if not any(k.startswith(prefix) for k in state):
        return state
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def rename_prefixes(
    state: dict[str, torch.Tensor], prefixes: Sequence[tuple[str, str]]
) -> dict[str, torch.Tensor]:
    """``state`` with each key's first matching prefix ``theirs`` replaced by ``ours`` (pairs in
    ``prefixes``); other keys unchanged. How another library's state dict is mapped onto a segscope model."""
    out = {}
    for key, value in state.items():
        for theirs, ours in prefixes:
            if key.startswith(theirs):
                key = ours + key[len(theirs) :]
                break
        out[key] = value
    return out


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt a pretrained RGB first-layer weight ``(C_out, 3, k, k)`` to ``in_channels`` inputs.

    One channel: the sum over RGB (a grey image then gives the same activations as the RGB image
    of that grey). More channels: RGB repeated cyclically and rescaled by ``3 / in_channels`` so
    the activation scale is kept. The usual practice of timm's ``adapt_input_conv``.
    """
    if weight.shape[1] == in_channels:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // weight.shape[1])
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels)


def load_into(module: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """``module.load_state_dict(state)`` strictly, with one clear error naming ``source`` on mismatch."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise UserError(f"weights from {source} do not fit {type(module).__name__} ({detail})")
    module.load_state_dict(state)
