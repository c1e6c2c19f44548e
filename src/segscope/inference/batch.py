"""Batch prediction over many image files: decoding in DataLoader worker processes, a progress bar, and
resuming — an image whose outputs are already written is skipped, and every PNG is written atomically,
so an interrupted run leaves no half-written file and the next run goes on where it stopped. With a
``score`` function (e.g. a quality oracle's label-free estimate), every image gets a score, a finished
one from its written label PNG, so a resumed run scores them all.

The network (or classical method) runs in the main process, one image at a time, as ``seg.predict``
does; the workers only read and decode files, which is what a folder of many large PNG/JPEG/TIFF images
waits on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from segscope.data.images import pil_guard, read_image
from segscope.errors import DataError, UserError


class ImageFiles(torch.utils.data.Dataset):
    """``(index, image or None, error message or None)`` per path: a bad file is reported by the main
    process as one line instead of a worker's traceback."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            return index, read_image(self.paths[index]), None
        except DataError as exc:
            return index, None, str(exc)


def label_image(output, palette):
    """``(PNG-ready label map, overlay palette)`` of a method's output: class indices as uint8, or for
    :class:`~segscope.types.Instances` the instance-id map (uint16, 0 = background) with one colour each."""
    import numpy as np

    from segscope.data import default_palette
    from segscope.types import Instances

    if isinstance(output, Instances):
        ids = output.to_label_map()
        return ids.astype(np.uint16), default_palette(max(len(output) + 1, 3))
    return output.astype(np.uint8 if int(output.max(initial=0)) < 256 else np.uint16), palette


def output_paths(out: Path, path: Path) -> tuple[Path, Path]:
    """The label PNG and the overlay PNG written for ``path``."""
    return out / f"{path.stem}.png", out / f"{path.stem}_overlay.png"


def unfinished(out: Path, paths: Sequence[Path], *, resume: bool = True) -> list[Path]:
    """The paths still to predict, in order: all of them, or with ``resume`` those missing an output."""
    return [p for p in paths if not (resume and all(q.is_file() for q in output_paths(out, p)))]


def write_prediction(
    out: Path, path: Path, image: np.ndarray, output, palette: np.ndarray, alpha: float = 0.5
) -> np.ndarray:
    """Write the label PNG and the overlay PNG of a method's ``output`` for the image at ``path``
    (each atomically); returns the label map as written."""
    from segscope.visualize import overlay, write_png

    labels, pal = label_image(output, palette)
    label_path, overlay_path = output_paths(out, path)
    write_png(label_path, labels)
    write_png(overlay_path, overlay(image, labels, pal, alpha=alpha))
    return labels


def read_label_png(path: Path) -> np.ndarray:
    """The label map a previous run wrote to ``path``, as written (one line naming the file if unreadable)."""
    from PIL import Image

    try:
        with pil_guard(path), Image.open(path) as im:
            return np.asarray(im)
    except OSError:
        raise DataError(f"{path}: cannot read label map (delete it, or rerun with --overwrite)") from None


@dataclass(frozen=True)
class BatchSummary:
    """Images predicted now, images skipped as finished, and ``score`` of every image by stem (when a
    ``score`` function was given), in input order."""

    written: int
    skipped: int
    scores: dict[str, float] = field(default_factory=dict)


def predict_files(
    segmenter,
    paths: Sequence[Path],
    out: str | Path,
    *,
    workers: int = 0,
    resume: bool = True,
    alpha: float = 0.5,
    progress: bool = True,
    score: Callable[[np.ndarray, np.ndarray], float] | None = None,
) -> BatchSummary:
    """Write ``<stem>.png`` (class indices) and ``<stem>_overlay.png`` for every path into ``out``.

    ``workers`` decoding processes (0: decode in this process); with ``resume`` an image whose two
    outputs exist is skipped. ``score(image, label map)``, if given, is called for every image, a
    skipped one with the label map read back from its PNG; a :class:`UserError` it raises gets the
    image's path in front."""
    from tqdm.auto import tqdm

    from segscope.data import default_palette

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in paths]
    todo = unfinished(out, paths, resume=resume)
    pending = set(todo)
    finished = [p for p in paths if p not in pending] if score is not None else []
    to_read = todo + finished  # the finished images are read only to be scored
    palette = default_palette(segmenter.num_classes)
    loader = torch.utils.data.DataLoader(
        ImageFiles(to_read),
        batch_size=None,  # one decoded image at a time, no collation
        num_workers=workers,
        multiprocessing_context="spawn" if workers > 0 else None,
    )
    bar = tqdm(total=len(paths), initial=len(paths) - len(todo), desc="predict", disable=not progress)
    scores: dict[str, float] = {}
    for index, image, error in loader:
        if error is not None:
            raise DataError(f"{error} (outputs written so far are kept; rerun to resume)")
        image = np.asarray(image)
        if index < len(todo):
            labels = write_prediction(out, to_read[index], image, segmenter.predict(image), palette, alpha)
            bar.update(1)
        else:
            labels = read_label_png(output_paths(out, to_read[index])[0])
        if score is not None:
            try:
                scores[to_read[index].stem] = float(score(image, labels))
            except UserError as exc:
                raise UserError(f"{to_read[index]}: {exc}") from None
    bar.close()
    in_order = {p.stem: scores[p.stem] for p in paths} if score is not None else {}
    return BatchSummary(written=len(todo), skipped=len(paths) - len(todo), scores=in_order)


def volume_output_path(out: Path, path: Path) -> Path:
    """The label volume written for the volume at ``path``: same format (a slice folder gives a TIFF)."""
    from segscope.data.volumes import volume_stem

    name = Path(path).name.lower()
    suffix = next((s for s in (".nii.gz", ".nii", ".npy", ".tiff", ".tif") if name.endswith(s)), ".tif")
    return out / f"{volume_stem(path)}_labels{suffix}"


def predict_volumes(
    segmenter,
    paths: Sequence[Path],
    out: str | Path,
    *,
    resume: bool = True,
    alpha: float = 0.5,
    progress: bool = True,
) -> BatchSummary:
    """Segment volume files (multi-page TIFF, NIfTI, ``.npy``, or folders of slices) with a 3-D method.

    For each writes ``<stem>_labels.<ext>`` (the label volume, atomically, with the input's voxel
    spacing) and ``<stem>_overlay.png`` (its middle z-slice over the image); with ``resume`` a volume whose
    label volume exists is skipped."""
    from tqdm.auto import tqdm

    from segscope.data import default_palette
    from segscope.data.volumes import read_volume, volume_stem, write_volume
    from segscope.visualize import display_slice, overlay, write_png

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in paths]
    todo = [p for p in paths if not (resume and volume_output_path(out, p).is_file())]
    palette = default_palette(segmenter.num_classes)
    for path in tqdm(todo, desc="predict", disable=not progress):
        volume = read_volume(path)  # a DataError names the file; finished volumes are kept
        labels = np.asarray(segmenter.predict(volume.array), np.int64)
        write_volume(volume_output_path(out, path), labels, spacing=volume.spacing)
        image = display_slice(volume.array, 3)
        write_png(
            out / f"{volume_stem(path)}_overlay.png",
            overlay(image, display_slice(labels), palette, alpha=alpha),
        )
    return BatchSummary(written=len(todo), skipped=len(paths) - len(todo))
