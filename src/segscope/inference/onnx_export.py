"""ONNX export of a trained deep run and an ONNX Runtime backend for prediction.

:func:`export_onnx` writes the run's network - BatchNorm folded (:func:`~segscope.inference.fold_batchnorm`),
float32, eval mode - as ``model.onnx`` with one input ``image`` ``(N, C, H, W)`` (normalised as the run's
``model.input`` section says) and one output ``logits`` ``(N, K, H, W)``, then runs it in ONNX Runtime on
random input and reports the largest absolute difference to PyTorch. ``dynamic=True`` leaves batch, height
and width symbolic and checks a second, different size; a network whose graph fixes its size refuses with
one line. torch's TorchScript-based exporter is used (``dynamo=False``): it needs no extra package and
handles the padding arithmetic of these models; opset 17.

:class:`OnnxRuntimeModel` is a drop-in for the PyTorch module in
:meth:`~segscope.models.segmenter.DeepSegmenter.logits`: ``segscope predict --backend onnxruntime`` (or
``seg.use_onnxruntime(path)``) runs the same preprocessing, overlap-tile path and decision rule on it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from segscope.errors import UserError
from segscope.inference.optimize import fold_batchnorm
from segscope.io import atomic_path

OPSET = 17
GENERALISATION_TOLERANCE = 1e-3  # relative difference beyond float32 rounding: a wrong graph, not rounding
DEFAULT_SIZE = (256, 256)
INSTALL_HINT = "pip install 'segscope[onnx]'"


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote and measured."""

    path: Path
    input_shape: tuple[int, ...]
    dynamic: bool
    max_abs_diff: float
    checked_shapes: tuple[tuple[int, ...], ...]
    max_abs_logit: float  # the scale the difference is relative to


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise UserError(
            f"ONNX export and the onnxruntime backend need onnx and onnxruntime: {INSTALL_HINT}"
        ) from None
    return onnxruntime


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    in_channels: int,
    size: tuple[int, int] = DEFAULT_SIZE,
    dynamic: bool = False,
    name: str = "model",
    seed: int = 0,
) -> ExportReport:
    """Export ``model`` (a deep run's network) to ``path`` and check it in ONNX Runtime (module docstring).

    ``size``: the traced input's height and width (the run's ``resize`` when it has one); with
    ``dynamic=False`` it is the only size the file accepts.
    """
    ort = _onnxruntime()
    path = Path(path)
    folded = fold_batchnorm(model).float().eval()
    x = torch.randn(1, in_channels, *size, generator=torch.Generator().manual_seed(seed))
    axes = {"image": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}}
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's tracer and deprecation notes
            torch.onnx.export(
                folded,
                (x,),
                buffer,
                input_names=["image"],
                output_names=["logits"],
                opset_version=OPSET,
                dynamic_axes=axes if dynamic else None,
                dynamo=False,
            )
    except Exception as exc:  # the exporter's own message names the operator it cannot convert
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{name} cannot be exported to ONNX: {first}") from None
    shapes = [tuple(x.shape)]
    if dynamic:
        shapes.append((2, in_channels, size[0] + 32, size[1] + 16))
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    worst, scale = 0.0, 0.0
    for shape in shapes:
        probe = torch.randn(*shape, generator=torch.Generator().manual_seed(seed + 1))
        with torch.no_grad():
            expected = model.eval()(probe).float().numpy()
        try:
            got = session.run(["logits"], {"image": probe.numpy()})[0]
        except Exception as exc:
            first = str(exc).strip().splitlines()[0]
            raise UserError(
                f"{name}: the exported graph does not run at input size {shape[2:]} ({first[:200]}); "
                "export without --dynamic for a fixed size"
            ) from None
        if got.shape != expected.shape:
            raise UserError(
                f"{name}: the exported graph gives logits {got.shape} for input {shape}, PyTorch "
                f"{expected.shape}; export without --dynamic for a fixed size"
            )
        diff, top = float(np.abs(got - expected).max()), float(np.abs(expected).max())
        if diff > GENERALISATION_TOLERANCE * max(top, 1.0):
            raise UserError(
                f"{name}: the exported graph computes something else at input size {shape[2:]} (max abs diff "
                f"{diff:.2e}): the network fixes a size while tracing (e.g. adaptive pooling bins); "
                "export without --dynamic"
            )
        worst, scale = max(worst, diff), max(scale, top)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(buffer.getvalue())
    return ExportReport(path, tuple(x.shape), dynamic, worst, tuple(shapes), scale)


class OnnxRuntimeModel(nn.Module):
    """An ONNX file run by ONNX Runtime behind the ``model(x) -> logits`` interface of a torch module.

    ``like`` (the PyTorch network it was exported from) lends its ``output_margin`` / ``valid_input_size``
    so the overlap-tile path treats both the same.
    """

    def __init__(
        self, path: str | Path, *, like: nn.Module | None = None, threads: int | None = None
    ) -> None:
        super().__init__()
        ort = _onnxruntime()
        path = Path(path)
        if not path.is_file():
            raise UserError(
                f"{path}: no ONNX file; write it with `segscope export --run RUN_DIR --format onnx`"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise UserError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from None
        shape = self.session.get_inputs()[0].shape
        self.fixed_size = tuple(shape[2:]) if all(isinstance(s, int) for s in shape[2:]) else None
        for attr in ("output_margin", "valid_input_size"):
            if like is not None and hasattr(like, attr):
                setattr(self, attr, getattr(like, attr))
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixed_size is not None and tuple(x.shape[2:]) != self.fixed_size:
            raise UserError(
                f"{self.path} was exported for input size {self.fixed_size}, got {tuple(x.shape[2:])}; "
                "export it with --dynamic, or train/predict with that resize"
            )
        out = self.session.run(["logits"], {"image": x.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(out)
