"""Predict images of any size with a trained deep run, tile by tile, in bounded memory.

``TileSpec`` says how: window size, overlap and blend (MONAI's Gaussian or constant), or the ``exact``
placement whose output equals a whole-image pass (see :mod:`segscope.inference.streaming`), the number of
tiles per network call, and flips as test-time augmentation. Models with an ``output_margin`` (valid
convolutions) always use the U-Net paper's overlap-tile. The input comes from a region reader
(:mod:`segscope.inference.large_image`: tiled TIFF and memory maps are never decoded whole), the labels
go row block by row block into a tiled TIFF or ``.npy``, and a downsampled overlay preview is kept for
looking at. Peak memory is the strip of windows being blended (``K x (tile + overlap) x W`` float32) and
one batch of tiles, whatever the image's height.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from segscope.errors import UserError
from segscope.inference.large_image import ImageReader, LabelWriter, open_image_reader
from segscope.inference.streaming import blend_plan, exact_plan, margin_plan, receptive_radius, stream_logits

MODES = ("blend", "exact")
TTA = ("none", "hflip", "flips")
PREVIEW_SIDE = 2048


@dataclass(frozen=True)
class TileSpec:
    """``tile``: window side (``blend``) or core side (``exact``); ``halo``: context pixels per side in
    ``exact`` mode (``None``: the network's measured receptive radius); ``batch``: tiles per network call,
    as pixels: windows larger than ``tile`` (``exact`` mode's halo) go fewer at a time."""

    tile: int = 512
    overlap: float = 0.25
    blend: str = "gaussian"
    mode: str = "blend"
    halo: int | None = None
    batch: int = 4
    tta: str = "none"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"tile mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.tta not in TTA:
            raise UserError(f"test-time augmentation must be one of {', '.join(TTA)}, got {self.tta!r}")
        if self.tile < 32 or self.batch < 1 or not 0 <= self.overlap < 1:
            raise UserError(
                f"tile needs tile >= 32, batch >= 1 and 0 <= overlap < 1; got {self.tile}, {self.batch}, "
                f"{self.overlap}"
            )


def flip_average(
    net: Callable[[torch.Tensor], torch.Tensor], tta: str
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``net`` averaged over flipped copies of its input: ``hflip`` (2 passes) or ``flips`` (4: none,
    horizontal, vertical, both), each output flipped back."""
    if tta == "none":
        return net
    axes = [(), (3,)] if tta == "hflip" else [(), (3,), (2,), (2, 3)]

    def averaged(x: torch.Tensor) -> torch.Tensor:
        total = None
        for dims in axes:
            y = net(x.flip(dims) if dims else x).float()
            y = y.flip(dims) if dims else y
            total = y if total is None else total + y
        return total / len(axes)

    return averaged


def stream_segmenter(
    seg,
    reader: ImageReader,
    spec: TileSpec,
    emit: Callable[[int, torch.Tensor], None],
    *,
    progress: bool = True,
) -> None:
    """Logits of the deep run ``seg`` over ``reader``'s image, ``emit(y0, (K, rows, W))`` top to bottom."""
    from tqdm.auto import tqdm

    from segscope.data.images import convert_channels
    from segscope.data.torch_dataset import image_to_tensor

    if getattr(seg, "config", None) is not None and seg.config.resize:
        raise UserError(
            f"{reader.path}: tiled prediction runs at the image's own resolution, but run {seg.name} was "
            f"trained resized to {seg.config.resize}; predict without --tile"
        )
    height, width, channels = reader.shape
    if channels not in (1, 3) or (channels != seg.in_channels and seg.in_channels not in (1, 3)):
        raise UserError(
            f"{reader.path}: image has {channels} channels, model {seg.name} expects {seg.in_channels}"
        )
    model = seg.inference_model()
    net = flip_average(model, spec.tta)
    margin = int(getattr(seg.model, "output_margin", 0))
    plan = _plan(seg, model, height, width, spec, margin)
    largest = max(w.src_shape[0] * w.src_shape[1] for w in plan)
    batch = max(
        1, spec.batch * spec.tile**2 // largest
    )  # the pixels of `batch` tiles, also for wider windows

    def read(box: tuple[int, int, int, int]) -> torch.Tensor:
        block = reader.read(*box)
        if block.shape[2] != seg.in_channels:
            block = convert_channels(block, seg.in_channels)
        return image_to_tensor(block, seg.mean, seg.std)

    bar = tqdm(total=len(plan), desc=f"tiles of {reader.path.name}", disable=not progress, unit="tile")
    with torch.inference_mode():
        stream_logits(
            net, read, height, width, plan, emit, blend=spec.blend, batch_size=batch, progress=bar.update
        )
    bar.close()


def _plan(seg, model, height: int, width: int, spec: TileSpec, margin: int):
    if margin:  # valid convolutions: the U-Net paper's overlap-tile, output tiles the network accepts
        tile = [min(spec.tile, -(-s // 4) * 4) for s in (height, width)]
        while not all(seg.model.valid_input_size(t + 2 * margin) for t in tile):
            tile = [t + (not seg.model.valid_input_size(t + 2 * margin)) for t in tile]
        return margin_plan(height, width, tile, margin)
    if spec.mode == "exact":
        core = max(32, spec.tile // 32 * 32)
        halo = spec.halo if spec.halo is not None else receptive_radius(seg.model, seg.in_channels)
        return exact_plan(height, width, core, halo)
    window = (min(spec.tile, height), min(spec.tile, width))
    return blend_plan(height, width, window, spec.overlap)


@dataclass(frozen=True)
class LargePrediction:
    labels: Path
    preview: Path | None
    shape: tuple[int, int]


def predict_large(
    seg,
    source: str | Path | np.ndarray | ImageReader,
    out: str | Path,
    spec: TileSpec = TileSpec(),
    *,
    preview: str | Path | None = None,
    progress: bool = True,
) -> LargePrediction:
    """Segment the image at ``source`` tile by tile into the label file ``out`` (``.tif``: tiled TIFF, or
    ``.npy``), atomically; ``preview``: also a PNG overlay at most 2048 pixels a side."""
    base = getattr(seg, "base", seg)
    deep = hasattr(base, "inference_model") and getattr(base, "family", "") == "deep"
    if getattr(base, "task", "semantic") == "instance":
        raise UserError(
            f"{getattr(seg, 'name', seg)}: instance methods do not tile (objects cut by tile borders would "
            "need merging across tiles); predict without --tile"
        )
    if not deep or base.ndim != 2 or getattr(base, "task", "semantic") != "semantic":
        raise UserError(f"{getattr(seg, 'name', seg)}: tiled prediction needs a 2-D deep semantic run")
    if base is not seg and getattr(seg, "stages", None):
        raise UserError(f"{seg.name}: its stages after the network see whole images; predict without --tile")
    if isinstance(source, ImageReader):
        return _predict_large(base, source, Path(out), spec, preview, progress)
    with ImageReader(source) if isinstance(source, np.ndarray) else open_image_reader(source) as reader:
        return _predict_large(base, reader, Path(out), spec, preview, progress)


def _predict_large(
    base, reader: ImageReader, out: Path, spec: TileSpec, preview, progress: bool
) -> LargePrediction:
    height, width = reader.shape[:2]
    writer = LabelWriter(out, height, width)
    stride = max(1, -(-max(height, width) // PREVIEW_SIDE))
    small = np.zeros((-(-height // stride), -(-width // stride)), np.uint8)

    def emit(y0: int, logits: torch.Tensor) -> None:
        labels = base.decision(logits).astype(np.uint8)
        writer.write(y0, labels)
        picked = labels[(-y0) % stride :: stride, ::stride]  # this block's rows on the preview grid
        start = -(-y0 // stride)
        small[start : start + len(picked)] = picked

    try:
        stream_segmenter(base, reader, spec, emit, progress=progress)
    except BaseException:
        writer.abort()
        raise
    labels_path = writer.close()
    preview_path = None
    if preview is not None:
        from segscope.data import default_palette
        from segscope.visualize import overlay, write_png

        image = _sampled(reader, stride)
        write_png(Path(preview), overlay(image, small, default_palette(base.num_classes)))
        preview_path = Path(preview)
    return LargePrediction(labels_path, preview_path, (height, width))


def _sampled(reader: ImageReader, stride: int, rows: int = 1024) -> np.ndarray:
    """Every ``stride``-th pixel of the image, read ``rows`` rows at a time."""
    height, width = reader.shape[:2]
    step = max(stride, rows // stride * stride)
    parts = [
        reader.read(y, min(y + step, height), 0, width)[::stride, ::stride] for y in range(0, height, step)
    ]
    return np.concatenate(parts)


def large_output_paths(out: Path, path: Path) -> tuple[Path, Path]:
    """The label TIFF and the overlay preview written for ``path`` by tiled prediction."""
    return out / f"{path.stem}.tif", out / f"{path.stem}_preview.png"


def predict_large_files(
    seg, paths, out: str | Path, spec: TileSpec, *, resume: bool = True, progress: bool = True
) -> tuple[int, int]:
    """:func:`predict_large` for every path into ``out`` (``<stem>.tif`` and ``<stem>_preview.png``);
    with ``resume`` an image whose two outputs exist is skipped. Returns (written, skipped)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = skipped = 0
    for path in map(Path, paths):
        labels, preview = large_output_paths(out, path)
        if resume and labels.is_file() and preview.is_file():
            skipped += 1
            continue
        predict_large(seg, path, labels, spec, preview=preview, progress=progress)
        written += 1
    return written, skipped
