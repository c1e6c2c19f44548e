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
