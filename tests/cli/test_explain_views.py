"""`segscope explain dilation` and `explain unpooling`: tables, figures, untrained note, one-line errors."""

from __future__ import annotations

import re

import pytest

from segscope.cli.main import main
from segscope.data import open_dataset
from segscope.factory import create_segmenter
from tests.conftest import write_folder_dataset

PNG = b"\x89PNG\r\n\x1a\n"


def table_rows(out: str) -> list[list[str]]:
    block = out.split("\n\n")[1].splitlines()[2:]  # title line, header, then one row per layer
    return [line.split() for line in block]


def test_dilation_table_and_figure(tmp_path, capsys):
    figure = tmp_path / "dilation.png"
    assert main(["explain", "dilation", "--rates", "1,2,4", "--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "receptive field 15" in out.splitlines()[0]
    rows = table_rows(out)
    assert [r[:4] for r in rows] == [["1", "1", "3", "3"], ["2", "2", "7", "7"], ["3", "4", "15", "15"]]
    assert "touched fraction of the field: 1.000" in out
    assert figure.read_bytes().startswith(PNG)


def test_dilation_gridding_and_bad_rates(capsys):
    assert main(["explain", "dilation", "--rates", "2,2,2", "--kernel", "3"]) == 0
    out = capsys.readouterr().out
    assert "touched fraction of the field: 0.290" in out and "gridding" in out
    assert "# . # . #" in out  # the holes, drawn
    assert main(["explain", "dilation", "--rates", "1,0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--rates" in err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain_views")
    data = write_folder_dataset(root / "discs", n=2, size=48)
    trained = create_segmenter(
        "deconvnet_vgg16", num_classes=2, width=1 / 16,
        epochs=1, batch_size=2, samples_per_epoch=2, augment="none", device="cpu",
    )  # fmt: skip
    trained.fit(open_dataset(data), out_dir=root / "deconvnet", progress=False)
    create_segmenter("segnet_basic", num_classes=2, base_channels=4).save(root / "segnet_untrained")
    create_segmenter("unet_small", num_classes=2).save(root / "unet")
    return root, data / "images" / "img00.png"


def stage_fractions(out: str) -> dict[str, float]:
    rows = re.findall(r"^(\S+(?: of \S+)?)\s+\S+\s+\d+x\d+x\d+\s+\S+\s+([\d.]+)$", out, flags=re.M)
    return {name: float(fraction) for name, fraction in rows}


def test_unpooling_on_a_trained_deconvnet(runs, tmp_path, capsys):
    root, image = runs
    figure = tmp_path / "unpool.png"
    argv = ["explain", "unpooling", "--run", str(root / "deconvnet"), "--image", str(image)]
    assert main([*argv, "--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    fractions = stage_fractions(out)
    assert list(fractions)[:3] == ["input of unpool5", "unpool5", "deconv5-1"]
    assert {f"unpool{i}" for i in range(1, 6)} <= set(fractions) and "deconv1-2" in fractions
    for i in range(1, 6):  # a 2x2 unpooling keeps at most one value in four
        assert fractions[f"unpool{i}"] <= 0.25 + 1e-9
    assert "untrained" not in out and "non-zero fraction" in out
    assert figure.read_bytes().startswith(PNG)


def test_unpooling_untrained_run_says_so(runs, capsys):
    root, image = runs
    argv = ["explain", "unpooling", "--run", str(root / "segnet_untrained"), "--image", str(image)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    fractions = stage_fractions(out)
    assert [n for n in fractions if n.startswith("unpool")] == ["unpool4", "unpool3", "unpool2", "unpool1"]
    assert fractions["unpool1"] < fractions["conv1-1"]  # densified again
    assert "untrained" in out.split("\n\n")[-1]


def test_unpooling_refuses_a_model_without_unpooling(runs, capsys):
    root, image = runs
    assert main(["explain", "unpooling", "--run", str(root / "unet"), "--image", str(image)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unet_small" in err and "unpooling" in err
    assert main(["explain", "unpooling", "--run", str(root / "unet")]) == 2
    assert "--image" in capsys.readouterr().err
