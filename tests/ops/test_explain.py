"""`segscope explain`: tables of the lecture's example, figures, one-line user errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segscope.cli import explain
from segscope.errors import UserError


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="segscope")
    explain.add_parser(parser.add_subparsers())
    args = parser.parse_args(["explain", *argv])
    return args.func(args)


def last_table(output: str) -> np.ndarray:
    block = output.strip().split("\n\n")[-1].splitlines()[1:]
    return np.array([[float(v) for v in line.split()] for line in block])


def test_conv_default_is_the_lecture_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("conv") == 0
    out = capsys.readouterr().out
    np.testing.assert_array_equal(last_table(out), [[122, 148], [126, 134]])
    assert "y0 | 1 4 1 0 1 4 3 0 3 3 1 0 0 0 0 0" in out  # first row of C


def test_transposed_default_is_the_lecture_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("transposed") == 0
    expected = [[2, 9, 6, 1], [6, 29, 30, 7], [10, 29, 33, 13], [12, 24, 16, 4]]
    np.testing.assert_array_equal(last_table(capsys.readouterr().out), expected)


def test_transposed_with_stride_matches_torch(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run_cli(
            "transposed", "--input", "1,2;3,4", "--kernel", "1,2;3,4", "--stride", "2", "--output-size", "5,5"
        )
        == 0
    )
    y = torch.tensor([[1.0, 2], [3, 4]])[None, None]
    expected = F.conv_transpose2d(y, torch.tensor([[1.0, 2], [3, 4]])[None, None], stride=2, output_padding=1)
    np.testing.assert_array_equal(last_table(capsys.readouterr().out), expected[0, 0].numpy())


def test_interp_matches_torch(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run_cli("interp", "--input", "1,2,3;4,5,6", "--mode", "bilinear", "--size", "4,5", "--align-corners")
        == 0
    )
    x = torch.tensor([[1.0, 2, 3], [4, 5, 6]])[None, None]
    expected = F.interpolate(x, size=(4, 5), mode="bilinear", align_corners=True)[0, 0].numpy()
    np.testing.assert_allclose(last_table(capsys.readouterr().out), expected, atol=1e-4)


def test_interp_bicubic_prints_the_coefficient(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("interp", "--mode", "bicubic", "--cubic-a", "-0.5") == 0
    out = capsys.readouterr().out
    assert "Keys a = -0.5" in out and last_table(out).shape == (8, 8)


@pytest.mark.parametrize("what", ["conv", "transposed", "interp"])
def test_figure_written(what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"{what}.png"
    assert run_cli(what, "--figure", str(path)) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"figure written to {path}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["conv", "--kernel", "1,2;3"], "--kernel"),
        (["conv", "--input", "a,b"], "--input"),
        (["conv", "--input", "1,2;3,4"], "does not fit"),
        (["transposed", "--output-size", "9,9"], "--output-size"),
        (["interp", "--size", "4"], "--size"),
        (["conv", "--figure", "out.jpg"], "--figure"),
    ],
)
def test_user_errors(argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=message):
        run_cli(*argv)
