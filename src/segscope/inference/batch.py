"""Batch prediction over many image files: decoding in DataLoader worker processes, a progress bar, and
resuming — an image whose outputs are already written is skipped, and every PNG is written atomically,
so an interrupted run leaves no half-written file and the next run goes on where it stopped.

The network (or classical method) runs in the main process, one image at a time, as ``seg.predict``
does; the workers only read and decode files, which is what a folder of many large PNG/JPEG/TIFF images
waits on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from segscope.data.images import read_image
from segscope.errors import DataError


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


@dataclass(frozen=True)
class BatchSummary:
    written: int
    skipped: int


def predict_files(
    segmenter,
    paths: Sequence[Path],
    out: str | Path,
    *,
    workers: int = 0,
    resume: bool = True,
    alpha: float = 0.5,
    progress: bool = True,
) -> BatchSummary:
    """Write ``<stem>.png`` (class indices) and ``<stem>_overlay.png`` for every path into ``out``.

    ``workers`` decoding processes (0: decode in this process); with ``resume`` an image whose two
    outputs exist is skipped."""
    from tqdm.auto import tqdm

    from segscope.data import default_palette
    from segscope.visualize import overlay, write_png

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in paths]
    todo = [p for p in paths if not (resume and all(q.is_file() for q in output_paths(out, p)))]
    palette = default_palette(segmenter.num_classes)
    loader = torch.utils.data.DataLoader(
        ImageFiles(todo),
        batch_size=None,  # one decoded image at a time, no collation
        num_workers=workers,
        multiprocessing_context="spawn" if workers > 0 else None,
    )
    bar = tqdm(total=len(paths), initial=len(paths) - len(todo), desc="predict", disable=not progress)
    for index, image, error in loader:
        if error is not None:
            raise DataError(f"{error} (outputs written so far are kept; rerun to resume)")
        labels, pal = label_image(segmenter.predict(np.asarray(image)), palette)
        label_path, overlay_path = output_paths(out, todo[index])
        write_png(label_path, labels)
        write_png(overlay_path, overlay(np.asarray(image), labels, pal, alpha=alpha))
        bar.update(1)
    bar.close()
    return BatchSummary(written=len(todo), skipped=len(paths) - len(todo))


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
