"""Bad input the data layer must handle or name: mixed grey/colour folders, decompression bombs,
stray mask labels."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from segscope.cli.main import main
from segscope.data import open_dataset, read_image
from segscope.data.torch_dataset import TorchSegmentationDataset
from segscope.errors import DataError


def _write_pair(root: Path, stem: str, image: np.ndarray, mask: np.ndarray, mode: str | None = None) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image, mode=mode).save(root / "images" / f"{stem}.png")
    Image.fromarray(mask).save(root / "masks" / f"{stem}.png")


def _disc(size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    mask = ((yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= (size // 4) ** 2).astype(np.uint8)
    grey = (50 + 150 * mask + rng.integers(0, 20, mask.shape)).astype(np.uint8)
    return grey, mask


def _mixed_folder(root: Path, colour: int, grey: int) -> Path:
    for i in range(colour + grey):
        g, mask = _disc(seed=i)
        if i < colour:
            rgb = np.stack([g, (g * 0.8).astype(np.uint8), (g * 0.6).astype(np.uint8)], -1)
            _write_pair(root, f"im{i}", rgb, mask * 255)
        else:
            _write_pair(root, f"im{i}", g, mask * 255)
    return root


# -- 1. grey and colour images in one folder -------------------------------------------------------
def test_mixed_grey_and_colour_folder_promotes_grey_to_colour(tmp_path: Path, capsys):
    root = _mixed_folder(tmp_path / "mixed", colour=3, grey=1)
    ds = open_dataset(root)
    assert ds.channels == 3
    images = [ds.load_image(i) for i in range(len(ds))]
    assert [im.shape for im in images] == [(32, 32, 3)] * 4
    grey = images[3]
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    assert np.array_equal(grey[..., 0], np.asarray(Image.open(ds.samples[3].image)))
    # folds keep the parent's channel count, even a fold made only of the grey image
    assert ds.subset([3]).channels == 3 and ds.subset([3]).load_image(0).shape == (32, 32, 3)
    assert ds.with_samples(ds.samples[3:]).channels == 3
    assert TorchSegmentationDataset(ds.subset([3]))[0][0].shape == (3, 32, 32)

    out = tmp_path / "run"
    assert main(["train", "--data", str(root), "--model", "otsu", "--out", str(out), "--quiet"]) == 0
    assert (out / "metrics.json").is_file()
    capsys.readouterr()


def test_mostly_grey_folder_converts_the_colour_image_to_luma(tmp_path: Path):
    root = _mixed_folder(tmp_path / "mixed", colour=1, grey=3)
    ds = open_dataset(root)
    assert ds.channels == 1
    assert [ds.load_image(i).shape for i in range(len(ds))] == [(32, 32, 1)] * 4
    rgb = read_image(ds.samples[0].image)
    luma = np.asarray(Image.fromarray(rgb).convert("L")).astype(int)  # PIL uses ITU-R 601-2 luma
    assert np.abs(ds.load_image(0)[..., 0].astype(int) - luma).max() <= 1


def test_channels_come_from_headers_without_decoding_pixels(tmp_path: Path, monkeypatch):
    root = _mixed_folder(tmp_path / "mixed", colour=3, grey=2)
    g, mask = _disc()
    pal = Image.fromarray(g).quantize(8)  # a palette image with grey and colour entries
    pal.putpalette([0, 0, 0, 255, 0, 0] + [128] * 18)
    pal.save(root / "images" / "im5.png")
    Image.fromarray(mask * 255).save(root / "masks" / "im5.png")
    ds = open_dataset(root)

    def no_decoding(self, *args, **kwargs):
        raise AssertionError(f"{self.filename}: pixels decoded to count channels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert ds.channels == 3  # 3 RGB + 1 colour palette against 2 grey, from headers only
    monkeypatch.undo()
    assert ds.load_image(5).shape == (32, 32, 3)


def test_tie_between_grey_and_colour_prefers_colour(tmp_path: Path):
    assert open_dataset(_mixed_folder(tmp_path / "tie", colour=2, grey=2)).channels == 3


def test_deep_training_on_mixed_folder_no_longer_fails_on_channels(tmp_path: Path, capsys):
    root = _mixed_folder(tmp_path / "mixed", colour=3, grey=1)
    args = ["train", "--data", str(root), "--model", "unet_small", "--out", str(tmp_path / "run")]
    args += ["--epochs", "1", "--batch-size", "2", "--device", "cpu", "--quiet"]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "channels" not in err


# -- 2. decompression bombs ----------------------------------------------------------------------
def _png_claiming(path: Path, width: int, height: int, mode: str = "L") -> Path:
    """A valid tiny PNG whose IHDR is patched to claim ``width`` x ``height`` (CRC recomputed)."""
    buf = io.BytesIO()
    Image.new(mode, (4, 4)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def test_decompression_bomb_is_one_line_data_error(tmp_path: Path):
    bomb = _png_claiming(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(DataError) as info:
        read_image(bomb)
    message = str(info.value)
    assert message.startswith(f"{bomb}: image too large") and "\n" not in message
    assert "100000x100000" in message


@pytest.mark.parametrize("command", ["segment", "train"])
def test_decompression_bomb_cli_exits_2_with_one_line(tmp_path: Path, capsys, command):
    if command == "segment":
        bomb = _png_claiming(tmp_path / "bomb.png", 100_000, 100_000)
        args = ["segment", "--method", "otsu", str(bomb), "--out", str(tmp_path / "x"), "--quiet"]
    else:
        root = _mixed_folder(tmp_path / "data", colour=4, grey=0)
        bomb = _png_claiming(root / "images" / "im2.png", 100_000, 100_000, mode="RGB")
        args = ["train", "--data", str(root), "--model", "otsu", "--out", str(tmp_path / "x"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(bomb) in err and "image too large" in err and "100000x100000" in err


def test_large_image_warning_does_not_crash(tmp_path: Path):
    # 10000 x 10000 = 100 M pixels: over PIL's warning limit (89 M), under its error limit (179 M);
    # mode 1 keeps the allocation at 12.5 MB. pyproject turns warnings into errors under pytest.
    big = _png_claiming(tmp_path / "big.png", 10_000, 10_000, mode="1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError) as info:  # the pixels are truncated: a normal read error
            read_image(big)
    assert "too large" not in str(info.value) and str(big) in str(info.value)


# -- 3. stray labels in masks ----------------------------------------------------------------------
@pytest.mark.parametrize(("fg", "stray"), [(1, 7), (255, 128)])
def test_stray_label_names_the_mask_that_holds_it(tmp_path: Path, capsys, fg: int, stray: int):
    root = tmp_path / "stray"
    for i in range(20):
        g, mask = _disc(size=16, seed=i)
        mask = mask * fg
        if i == 18:
            mask[0, 0] = stray
        _write_pair(root, f"s{i:02d}", g, mask)
    bad = root / "masks" / "s18.png"
    with pytest.raises(DataError) as info:
        open_dataset(root)
    message = str(info.value)
    assert message.startswith(f"{bad}:") and f"[{stray}]" in message and "\n" not in message

    out = tmp_path / "run"
    assert main(["train", "--data", str(root), "--model", "otsu", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and err.count("\n") == 1


def test_rare_but_contiguous_class_is_not_a_stray(tmp_path: Path):
    root = tmp_path / "rare"
    for i in range(20):
        g, mask = _disc(size=16, seed=i)
        if i == 18:
            mask[0:2, 0:2] = 2  # a rare third class, right after 0 and 1: a class, not a stray
        _write_pair(root, f"s{i:02d}", g, mask)
    ds = open_dataset(root)
    assert ds.num_classes == 3 and ds.codec.mode == "index"
    ds.validate()


def test_out_of_range_label_after_the_first_16_masks_is_found(tmp_path: Path):
    # the class count used to come from the first 16 masks only; now every mask counts
    root = tmp_path / "late"
    for i in range(20):
        g, mask = _disc(size=16, seed=i)
        mask = mask * (2 if i % 2 else 1)
        if i >= 16:
            mask[0:2, 0:2] = 3
        _write_pair(root, f"s{i:02d}", g, mask)
    ds = open_dataset(root)
    assert ds.num_classes == 4
    ds.validate()
