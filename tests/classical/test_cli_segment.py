"""``segscope segment``: label PNGs, overlays and instance maps on disk, and clear errors."""

import argparse

import numpy as np
import pytest
from PIL import Image

from segscope.cli import segment
from segscope.errors import UserError


def parse(argv):
    parser = argparse.ArgumentParser()
    segment.add_parser(parser.add_subparsers())
    return parser.parse_args(["segment", *argv])


@pytest.fixture
def images(tmp_path):
    yy, xx = np.mgrid[:40, :60]
    discs = ((yy - 20) ** 2 + (xx - 20) ** 2 < 196) | ((yy - 20) ** 2 + (xx - 40) ** 2 < 196)
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        image = (np.where(discs, 200, 40) + rng.normal(0, 5, discs.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"cells{i}.png")
    return folder, discs


def test_segment_writes_labels_overlays_and_instances(images, tmp_path):
    folder, discs = images
    out = tmp_path / "out"
    args = parse(
        [str(folder), "--method", "watershed", "--out", str(out), "--option", "markers=distance",
         "-o", "sigma=1", "-o", "h=0.2", "--instances", "--quiet"]
    )  # fmt: skip
    assert args.func(args) == 0
    for i in range(2):
        labels = np.asarray(Image.open(out / f"cells{i}.png"))
        assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1}
        # the drawn discs minus the dividing line (and a rim the 1-px smoothing may shift)
        assert (labels.astype(bool) == discs).mean() > 0.97 and not labels[20, 30]
        instances = np.asarray(Image.open(out / f"cells{i}_instances.png"))
        assert len(np.unique(instances[instances > 0])) == 2
        overlay = np.asarray(Image.open(out / f"cells{i}_overlay.png"))
        assert overlay.shape == (40, 60, 3)
    assert not list(out.glob(".*.tmp"))  # written atomically, no leftovers


def test_segment_refuses_bad_options_and_untrained_methods(images, tmp_path):
    folder, _ = images
    with pytest.raises(UserError, match="unknown options"):
        args = parse([str(folder), "--method", "otsu", "--out", str(tmp_path / "o"), "-o", "sgima=2"])
        args.func(args)
    with pytest.raises(UserError, match="block_size must be an odd integer"):
        args = parse(
            [
                str(folder),
                "--method",
                "adaptive_threshold",
                "--out",
                str(tmp_path / "o"),
                "-o",
                "block_size=4",
            ]
        )
        args.func(args)
    with pytest.raises(UserError, match="learns from labelled images"):
        args = parse([str(folder), "--method", "slic", "--out", str(tmp_path / "o")])
        args.func(args)
    with pytest.raises(UserError, match="gives no instance map"):
        args = parse([str(folder), "--method", "otsu", "--out", str(tmp_path / "o"), "--instances"])
        args.func(args)


# -- prompts: --box, --fg-points, --bg-points, --seed-radius -----------------------------------------
@pytest.fixture
def two_discs_png(tmp_path):
    """A 40x90 grey image with two equal bright discs: left (row 20, col 22), right (row 20, col 66)."""
    yy, xx = np.mgrid[:40, :90]
    left = (yy - 20) ** 2 + (xx - 22) ** 2 < 121
    right = (yy - 20) ** 2 + (xx - 66) ** 2 < 121
    rng = np.random.default_rng(0)
    image = (np.where(left | right, 200, 40) + rng.normal(0, 5, left.shape)).clip(0, 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    return path, left, right


def run_main(argv, capsys):
    from segscope.cli.main import main

    code = main(argv)
    return code, capsys.readouterr()


def test_segment_with_a_box_keeps_the_object_inside_it(two_discs_png, tmp_path, capsys):
    path, left, right = two_discs_png
    out = tmp_path / "seg"
    code, _ = run_main(
        ["segment", "--method", "grabcut", str(path), "--box", "50,4,82,36", "--out", str(out), "--quiet"],
        capsys,
    )
    assert code == 0
    labels = np.asarray(Image.open(out / "photo.png")).astype(bool)
    inside = np.zeros_like(labels)
    inside[4:36, 50:82] = True  # rows y0:y1, columns x0:x1
    assert labels.any() and not (labels & ~inside).any()
    assert (labels & right).sum() / (labels | right).sum() > 0.8 and not (labels & left).any()
    assert (out / "photo_overlay.png").exists()


def test_segment_with_points(two_discs_png, tmp_path, capsys):
    path, left, right = two_discs_png
    out = tmp_path / "seg"
    code, _ = run_main(
        ["segment", "--method", "random_walker", str(path), "--fg-points", "22,20", "--bg-points",
         "66,20; 45,5", "--seed-radius", "1", "--out", str(out), "--quiet"],
        capsys,
    )  # fmt: skip
    assert code == 0
    labels = np.asarray(Image.open(out / "photo.png")).astype(bool)
    assert (labels & left).sum() / (labels | left).sum() > 0.9 and not (labels & right).any()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "grabcut", "--box", "1,2,3"], "--box '1,2,3': expected four numbers x0,y0,x1,y1"),
        (["--method", "grabcut", "--fg-points", "1,2;3"], "--fg-points '1,2;3': expected x,y pairs"),
        (["--method", "otsu", "--box", "50,4,82,36"], "otsu takes no prompt"),
        (["--method", "grabcut", "--box", "50,4,82,36", "--workers", "2"], "--workers"),
        (["--method", "graphcut", "--fg-points", "22,20"], "graphcut needs object and background seeds"),
        (["--method", "grabcut", "--fg-points", "95,20"], "fg point (95, 20) is outside the 90x40 image"),
        (["--method", "grabcut", "--box", "1,2,3,4", "--seed-radius", "-2"], "seed radius"),
    ],
)
def test_segment_prompt_errors_exit_2_with_one_line(two_discs_png, tmp_path, capsys, extra, message):
    path, _, _ = two_discs_png
    code, captured = run_main(["segment", str(path), "--out", str(tmp_path / "o"), "--quiet", *extra], capsys)
    err = captured.err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
