"""``register_model``: how a deep architecture joins the registry (one line beside its builder)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from segscope.models.segmenter import DeepSegmenter
from segscope.registry import REGISTRY
from segscope.segmenter import Segmenter


def register_model(
    name: str, *, paper: str = "", segmenter: type[Segmenter] = DeepSegmenter, **defaults: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an ``nn.Module`` builder ``builder(num_classes=, in_channels=, **options)`` under ``name``,
    run by ``segmenter`` (the semantic 2-D :class:`DeepSegmenter` unless an architecture needs another:
    an instance or volumetric adapter declares its own ``task`` and ``ndim``)."""
    return REGISTRY.register(name, segmenter=segmenter, paper=paper, **defaults)


def register_variant(
    name: str, network: Callable[..., Any], *, paper: str, doc: str, **fixed: Any
) -> Callable[..., Any]:
    """Register one variant of an architecture: ``network(num_classes, in_channels, **fixed, **options)``
    under ``name``, e.g. ``register_variant("pspnet_resnet50", PSPNet, paper=..., doc=...,
    encoder="resnet50")``; ``doc`` is the line ``segscope models`` shows. Returns the builder."""

    def build(num_classes: int = 2, in_channels: int = 3, **options: Any) -> Any:
        return network(num_classes, in_channels, **fixed, **options)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = doc
    register_model(name, paper=paper)(build)
    return build
