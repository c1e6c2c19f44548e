"""Batch prediction under Ray Data: the same files as the single-process predictor, a rerun predicts only
the image whose output was missing, a corrupt file is one DataError naming it after the others are
written, and ``predict --ray`` runs on a Ray the caller started without shutting it down."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
pytest.importorskip("ray.data", reason="ray is installed without ray[data]")

from segscope import create_segmenter, load, open_dataset  # noqa: E402
from segscope.cli.main import main  # noqa: E402
from segscope.cluster import RAY_MISSING, predict_files_ray  # noqa: E402
from segscope.errors import DataError, UserError  # noqa: E402
from segscope.inference.batch import predict_files  # noqa: E402
from tests.conftest import write_folder_dataset  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")  # Ray's own DataContext fields
SUFFIXES = ("", "_overlay")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A deep run trained for one short epoch: the actors load real weights, not a classical method."""
    root = tmp_path_factory.mktemp("ray_run")
    data = write_folder_dataset(root / "train", n=2, size=48)
    seg = create_segmenter(
        "unet_small", num_classes=2, epochs=1, batch_size=2, samples_per_epoch=2, augment="none", device="cpu"
    )
    seg.fit(open_dataset(data), out_dir=root / "unet", progress=False)
    return root / "unet"


@pytest.fixture
def folder(tmp_path: Path) -> list[Path]:
    root = write_folder_dataset(tmp_path / "discs", n=5, size=48, seed=3)
    return sorted((root / "images").iterdir())


def outputs(out: Path, path: Path) -> list[Path]:
    return [out / f"{path.stem}{suffix}.png" for suffix in SUFFIXES]


def single_process(run: Path, folder: list[Path], out: Path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each actor (num_cpus_per_actor=1)
    try:
        seg = load(run)
        return seg, predict_files(seg, folder, out, progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_ray_writes_the_files_of_predict_files_and_resumes(local_ray, tiny_run, folder, tmp_path):
    seg, single = single_process(tiny_run, folder, tmp_path / "single")
    summary = predict_files_ray(tiny_run, folder, tmp_path / "ray", batch_size=2, progress=False)
    assert (single.written, summary.written, summary.skipped) == (5, 5, 0)
    for p in folder:
        for a, b in zip(outputs(tmp_path / "single", p), outputs(tmp_path / "ray", p), strict=True):
            assert a.read_bytes() == b.read_bytes(), b.name
        labels = np.asarray(Image.open(tmp_path / "ray" / f"{p.stem}.png"))
        np.testing.assert_array_equal(labels, seg.predict(np.asarray(Image.open(p))[..., None]))
    overlays = {(tmp_path / "ray" / f"{p.stem}_overlay.png").read_bytes() for p in folder}
    assert len(overlays) == 5  # five different images under the colours: a mix-up of files would show

    redo = tmp_path / "ray" / f"{folder[2].stem}_overlay.png"
    redo.unlink()  # as if interrupted before its overlay
    kept = {q: q.stat().st_mtime_ns for p in folder if p != folder[2] for q in outputs(tmp_path / "ray", p)}
    again = predict_files_ray(tiny_run, folder, tmp_path / "ray", progress=False)
    assert (again.written, again.skipped) == (1, 4)
    assert {q: q.stat().st_mtime_ns for q in kept} == kept  # the other images were not predicted again
    for q in outputs(tmp_path / "ray", folder[2]):  # both outputs of the unfinished image, rewritten
        assert q.read_bytes() == (tmp_path / "single" / q.name).read_bytes()
    assert local_ray.is_initialized()  # the caller's Ray is left running


@pytest.mark.slow
def test_a_corrupt_file_is_one_data_error_after_the_others(local_ray, tiny_run, folder, tmp_path):
    bad = folder[0].parent / "img02.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="img02.png: cannot read image") as info:
        predict_files_ray(tiny_run, folder, tmp_path / "out", batch_size=2, progress=False)
    assert "\n" not in str(info.value) and "rerun to resume" in str(info.value)
    written = sorted(q.name for q in (tmp_path / "out").iterdir())
    assert written == sorted(q.name for p in folder if p != bad for q in outputs(tmp_path / "out", p))


@pytest.mark.slow
def test_predict_command_with_ray(local_ray, tiny_run, folder, tmp_path, capsys):
    argv = ["predict", "--run", str(tiny_run), str(folder[0].parent), "--out", str(tmp_path / "p"), "--quiet"]
    assert main([*argv, "--ray"]) == 0
    assert "5 predictions written" in capsys.readouterr().out
    assert main([*argv, "--ray", "--workers", "1"]) == 0
    assert "(5 already there, skipped)" in capsys.readouterr().out
    assert local_ray.is_initialized()


def test_ray_refuses_the_oracle_and_onnxruntime(tmp_path, capsys):
    argv = ["predict", "--run", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "p"), "--ray"]
    assert main([*argv, "--oracle", str(tmp_path)]) == 2
    assert "--ray cannot be combined with --oracle" in capsys.readouterr().err
    assert main([*argv, "--backend", "onnxruntime"]) == 2
    assert "--ray cannot be combined with --backend onnxruntime" in capsys.readouterr().err
    assert main(["predict", "--run", str(tmp_path), "--ray", str(tmp_path), "--out", "p", str(tmp_path)]) == 2
    assert "that is a path, not a Ray address" in capsys.readouterr().err


def test_without_ray_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(UserError) as info:
        predict_files_ray(tmp_path, [], tmp_path / "out")
    assert str(info.value) == RAY_MISSING == "ray is not installed: pip install 'segscope[ray]'"
