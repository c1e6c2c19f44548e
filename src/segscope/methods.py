"""Build any registered method, classical or deep, as a :class:`~segscope.segmenter.Segmenter`."""

from __future__ import annotations

from typing import Any

from segscope.registry import REGISTRY
from segscope.segmenter import Segmenter


def _ensure_registered() -> None:
    import segscope.classical  # noqa: F401  (registers classical methods)
    import segscope.models  # noqa: F401  (registers deep models)


def list_models(*, family: str | None = None, task: str | None = None) -> list[str]:
    """Names of every registered method, optionally filtered by family and task."""
    _ensure_registered()
    return REGISTRY.names(family=family, task=task)


def create_model(name: str, num_classes: int = 2, **options: Any) -> Any:
    """A deep model's ``nn.Module`` (or, for a classical name, its Segmenter) built with ``options``."""
    _ensure_registered()
    entry = REGISTRY.get(name)
    kwargs = {**entry.defaults, **options}
    return entry.builder(num_classes=num_classes, **kwargs)


def create_segmenter(name: str, num_classes: int = 2, *, in_channels: int = 3, **options: Any) -> Segmenter:
    """A Segmenter for ``name``: classical methods directly, deep models wrapped for training.

    For deep models, options that :class:`segscope.engine.config.TrainConfig` knows (``epochs``,
    ``lr``, ``batch_size``, ``crop_size``, ...) configure training; the rest go to the model builder.
    """
    _ensure_registered()
    entry = REGISTRY.get(name)
    if entry.family == "classical":
        return entry.builder(num_classes=num_classes, **{**entry.defaults, **options})
    from segscope.deep import DeepSegmenter

    return DeepSegmenter(name, num_classes=num_classes, in_channels=in_channels, **options)
