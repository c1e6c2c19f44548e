"""Thin :class:`torch.nn.Module` wrappers: each stores its options and calls one pure loss function.

Tensors (class ``weight``, ``cost_matrix``) are buffers, so ``.to(device)`` moves them; the functions
also move them to the logits' device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import nn

from segscope.losses import boundary, functional, lovasz, ohem


class FunctionalLoss(nn.Module):
    """Base: ``forward(logits, target)`` is ``function(logits, target, **options)``."""

    function: Callable[..., torch.Tensor]

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self._options: dict[str, Any] = {}
        self._buffers_named: list[str] = []
        for key, value in options.items():
            if isinstance(value, torch.Tensor):
                self.register_buffer(key, value.detach().float())
                self._buffers_named.append(key)
            else:
                self._options[key] = value

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        tensors = {key: getattr(self, key) for key in self._buffers_named}
        return type(self).function(logits, target, **self._options, **tensors)

    def extra_repr(self) -> str:
        opts = [f"{k}={v!r}" for k, v in self._options.items()]
        opts += [f"{k}=<tensor {tuple(getattr(self, k).shape)}>" for k in self._buffers_named]
        return ", ".join(opts)


class CrossEntropyLoss(FunctionalLoss):
    """:func:`segscope.losses.functional.cross_entropy`."""

    function = staticmethod(functional.cross_entropy)

    def __init__(
        self, *, weight: torch.Tensor | None = None, ignore_index: int = 255, label_smoothing: float = 0.0
    ) -> None:
        super().__init__(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)


class DiceLoss(FunctionalLoss):
    """:func:`segscope.losses.functional.soft_dice_loss`."""

    function = staticmethod(functional.soft_dice_loss)

    def __init__(self, *, ignore_index: int = 255, smooth: float = 1.0) -> None:
        super().__init__(ignore_index=ignore_index, smooth=smooth)


class GeneralizedDiceLoss(FunctionalLoss):
    """:func:`segscope.losses.functional.generalized_dice_loss`."""

    function = staticmethod(functional.generalized_dice_loss)

    def __init__(self, *, ignore_index: int = 255, smooth: float = 1e-6) -> None:
        super().__init__(ignore_index=ignore_index, smooth=smooth)


class TverskyLoss(FunctionalLoss):
    """:func:`segscope.losses.functional.tversky_loss`."""

    function = staticmethod(functional.tversky_loss)

    def __init__(
        self, *, alpha: float = 0.3, beta: float = 0.7, ignore_index: int = 255, smooth: float = 1.0
    ) -> None:
        super().__init__(alpha=alpha, beta=beta, ignore_index=ignore_index, smooth=smooth)


class FocalLoss(FunctionalLoss):
    """:func:`segscope.losses.functional.focal_loss`."""

    function = staticmethod(functional.focal_loss)

    def __init__(
        self, *, gamma: float = 2.0, weight: torch.Tensor | None = None, ignore_index: int = 255
    ) -> None:
        super().__init__(gamma=gamma, weight=weight, ignore_index=ignore_index)


class CostSensitiveLoss(FunctionalLoss):
    """:func:`segscope.losses.functional.cost_sensitive_loss` with a ``(C, C)`` cost matrix."""

    function = staticmethod(functional.cost_sensitive_loss)

    def __init__(self, cost_matrix: torch.Tensor, *, ignore_index: int = 255) -> None:
        super().__init__(cost_matrix=torch.as_tensor(cost_matrix), ignore_index=ignore_index)


class LovaszSoftmaxLoss(FunctionalLoss):
    """:func:`segscope.losses.lovasz.lovasz_softmax_loss`."""

    function = staticmethod(lovasz.lovasz_softmax_loss)

    def __init__(
        self,
        *,
        ignore_index: int = 255,
        per_image: bool = False,
        classes: Literal["present", "all"] = "present",
    ) -> None:
        super().__init__(ignore_index=ignore_index, per_image=per_image, classes=classes)


class OHEMCrossEntropy(FunctionalLoss):
    """:func:`segscope.losses.ohem.ohem_cross_entropy`."""

    function = staticmethod(ohem.ohem_cross_entropy)

    def __init__(
        self,
        *,
        thresh: float = 0.7,
        min_kept: int | None = None,
        keep: float | None = None,
        weight: torch.Tensor | None = None,
        ignore_index: int = 255,
    ) -> None:
        super().__init__(
            thresh=thresh, min_kept=min_kept, keep=keep, weight=weight, ignore_index=ignore_index
        )


class BoundaryLoss(FunctionalLoss):
    """:func:`segscope.losses.boundary.boundary_loss`."""

    function = staticmethod(boundary.boundary_loss)

    def __init__(self, *, ignore_index: int = 255, classes: Sequence[int] | None = None) -> None:
        super().__init__(ignore_index=ignore_index, classes=None if classes is None else tuple(classes))


class BoundaryWeightedCrossEntropy(FunctionalLoss):
    """:func:`segscope.losses.boundary.boundary_weighted_cross_entropy`."""

    function = staticmethod(boundary.boundary_weighted_cross_entropy)

    def __init__(
        self,
        *,
        w0: float = 10.0,
        sigma: float = 5.0,
        weight: torch.Tensor | None = None,
        ignore_index: int = 255,
        cells: int | None = None,
    ) -> None:
        super().__init__(w0=w0, sigma=sigma, weight=weight, ignore_index=ignore_index, cells=cells)


class CompositeLoss(nn.Module):
    """``sum_i coef_i * loss_i(logits, target)``; :func:`segscope.losses.build_loss` returns one."""

    def __init__(self, terms: Sequence[tuple[float, nn.Module]], spec: str = "") -> None:
        super().__init__()
        self.coefs = [float(c) for c, _ in terms]
        self.terms = nn.ModuleList([m for _, m in terms])
        self.spec = spec

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = None
        for coef, term in zip(self.coefs, self.terms):
            value = term(logits, target)
            value = value if coef == 1.0 else coef * value
            total = value if total is None else total + value
        return total  # type: ignore[return-value]

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}, coefs={self.coefs}"
