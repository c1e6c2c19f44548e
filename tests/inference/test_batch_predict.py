"""Batch prediction over a folder: worker decoding gives the same files as decoding in-process, a rerun
skips finished images, a corrupt file is one line and keeps what was written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segscope.cli.main import main
from segscope.errors import DataError
from segscope.factory import create_segmenter
from segscope.inference.batch import predict_files
from tests.conftest import write_folder_dataset


class Counting:
    """Otsu, counting its calls."""

    def __init__(self) -> None:
        self.seg = create_segmenter("otsu", num_classes=2)
        self.num_classes, self.calls = 2, 0

    def predict(self, image):
        self.calls += 1
        return self.seg.predict(image)


@pytest.fixture
def folder(tmp_path: Path) -> list[Path]:
    root = write_folder_dataset(tmp_path / "discs", n=5)
    return sorted((root / "images").iterdir())


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_workers_give_the_same_outputs_and_a_rerun_resumes(folder, tmp_path):
    seg = Counting()
    a = predict_files(seg, folder, tmp_path / "a", workers=0, progress=False)
    b = predict_files(seg, folder, tmp_path / "b", workers=2, progress=False)
    assert (a.written, b.written) == (5, 5) and seg.calls == 10
    for p in folder:
        for suffix in ("", "_overlay"):
            np.testing.assert_array_equal(read(tmp_path / "a" / f"{p.stem}{suffix}.png"),
                                          read(tmp_path / "b" / f"{p.stem}{suffix}.png"))  # fmt: skip
        expected = seg.seg.predict(np.asarray(Image.open(p))[..., None])  # the method on the file itself
        np.testing.assert_array_equal(read(tmp_path / "a" / f"{p.stem}.png"), expected)
    (tmp_path / "a" / f"{folder[2].stem}_overlay.png").unlink()  # as if interrupted before its overlay
    seg.calls = 0
    again = predict_files(seg, folder, tmp_path / "a", progress=False)
    assert (again.written, again.skipped, seg.calls) == (1, 4, 1)
    assert predict_files(seg, folder, tmp_path / "a", resume=False, progress=False).written == 5


def test_a_corrupt_file_is_one_line_and_keeps_the_finished_outputs(folder, tmp_path):
    bad = folder[0].parent / "img02.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="img02.png: cannot read image") as info:
        predict_files(Counting(), folder, tmp_path / "out", workers=1, progress=False)
    assert "\n" not in str(info.value) and "rerun to resume" in str(info.value)
    assert (tmp_path / "out" / "img01.png").is_file() and not (tmp_path / "out" / "img02.png").exists()
    assert not list((tmp_path / "out").glob("*.tmp*"))  # nothing half-written


def test_predict_command_resumes(folder, tmp_path, capsys):
    run = tmp_path / "run"
    create_segmenter("otsu", num_classes=2).save(run)
    argv = ["predict", "--run", str(run), str(folder[0].parent), "--out", str(tmp_path / "p"), "--quiet"]
    assert main([*argv, "--workers", "2"]) == 0
    assert "5 predictions written" in capsys.readouterr().out
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "0 predictions written" in out and "(5 already there, skipped)" in out
    assert main([*argv, "--workers", "-1"]) == 2
