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
