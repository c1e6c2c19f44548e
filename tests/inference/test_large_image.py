"""Tiled inference on large images: the streamed windows equal the in-memory sliding window and
overlap-tile, the exact placement equals a whole-image pass, tiled TIFFs are read tile by tile and written
atomically, and the CLI writes label TIFFs with previews and resumes."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from segscope.cli.main import main
from segscope.data.torch_dataset import image_to_tensor
from segscope.errors import UserError
from segscope.inference.large_image import ImageReader, LabelWriter, TiledTiffReader, open_image_reader
from segscope.inference.large_predict import TileSpec, flip_average, predict_large, stream_segmenter
from segscope.inference.sliding_window import sliding_window
from segscope.inference.tiling import overlap_tile
from segscope.models.segmenter import DeepSegmenter


@pytest.fixture(scope="module")
def seg() -> DeepSegmenter:
    torch.manual_seed(0)
    s = DeepSegmenter("unet", 3, in_channels=3, model={"base_channels": 4, "depth": 3})
    return s


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (200, 264, 3), dtype=np.uint8)


def streamed(seg, source, spec) -> torch.Tensor:
    rows = []

    def emit(y0, logits):
        assert y0 == sum(r.shape[1] for r in rows)  # top to bottom, each row once
        rows.append(logits.clone())

    stream_segmenter(seg, source, spec, emit, progress=False)
    return torch.cat(rows, 1)


def whole(seg, image, fn) -> torch.Tensor:
    x = image_to_tensor(image, seg.mean, seg.std)[None]
    with torch.inference_mode():
        return fn(seg.inference_model(), x)[0]


def test_streamed_blend_equals_the_in_memory_sliding_window(seg, image):
    for blend in ("gaussian", "constant"):
        got = streamed(seg, ImageReader(image), TileSpec(tile=96, overlap=0.4, blend=blend, batch=3))
        ref = whole(seg, image, lambda m, x, b=blend: sliding_window(m, x, 96, 0.4, b, batch_size=2))
        assert got.shape == ref.shape == (3, 200, 264)
        assert (got - ref).abs().max() < 1e-6


def test_exact_placement_equals_a_whole_image_pass_and_a_short_halo_does_not(seg, image):
    ref = whole(seg, image, lambda m, x: m(x))
    exact = streamed(seg, ImageReader(image), TileSpec(tile=64, mode="exact"))  # halo: receptive radius
    assert (exact - ref).abs().max() < 1e-5
    short = streamed(seg, ImageReader(image), TileSpec(tile=64, mode="exact", halo=0))
    assert (short - ref).abs().max() > 1e-3  # zero padding at every core border shows


def test_valid_convolution_unet_streams_the_papers_overlap_tile(image):
    torch.manual_seed(1)
    seg = DeepSegmenter("unet", 2, in_channels=1, model={"base_channels": 4, "depth": 2, "padding": "valid"})
    grey = image[..., :1]
    got = streamed(seg, ImageReader(grey), TileSpec(tile=64))
    ref = whole(seg, grey, lambda m, x: overlap_tile(m, x, seg.model.output_margin, tile=64))
    assert got.shape == (2, 200, 264) and (got - ref).abs().max() < 1e-6


def test_flip_average_by_hand():
    net = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    x = torch.randn(1, 1, 5, 7)
    with torch.no_grad():
        y = flip_average(net, "flips")(x)
        hand = (net(x) + net(x.flip(3)).flip(3) + net(x.flip(2)).flip(2) + net(x.flip(2, 3)).flip(2, 3)) / 4
        assert torch.allclose(y, hand) and not torch.allclose(y, net(x))
        assert torch.allclose(flip_average(net, "hflip")(x), (net(x) + net(x.flip(3)).flip(3)) / 2)


def test_tiled_tiff_reads_only_the_tiles_a_region_touches(tmp_path, image):
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, image, tile=(64, 64), compression="zlib")
    reader = open_image_reader(path)
    assert isinstance(reader, TiledTiffReader) and reader.shape == (200, 264, 3)
    np.testing.assert_array_equal(reader.read(70, 130, 10, 60), image[70:130, 10:60])
    assert sorted(reader._cache) == [5, 10]  # rows 1-2 of tiles, column 0; 5 tiles a row
    padded = np.pad(image, ((5, 9), (3, 4), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(reader.read(-5, 209, -3, 268), padded)  # mirrored like F.pad
    reader.close()
    strips = tmp_path / "strips.tif"
    tifffile.imwrite(strips, image)
    assert isinstance(open_image_reader(strips).array, np.memmap)
    np.save(tmp_path / "a.npy", image[..., 0])
    assert open_image_reader(tmp_path / "a.npy").shape == (200, 264, 1)
    np.save(tmp_path / "f.npy", image.astype(np.float32))
    with pytest.raises(UserError, match="f.npy: expected 8-bit"):
        open_image_reader(tmp_path / "f.npy")


def test_label_writer_is_atomic(tmp_path):
    labels = np.random.default_rng(1).integers(0, 5, (300, 200), dtype=np.uint8)
    w = LabelWriter(tmp_path / "l.tif", 300, 200, tile=128)
    w.write(0, labels[:120])
    w.write(120, labels[120:])
    assert not (tmp_path / "l.tif").exists()
    w.close()
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "l.tif"), labels)
    with tifffile.TiffFile(tmp_path / "l.tif") as tif:
        assert tif.pages[0].is_tiled and len(list(tmp_path.iterdir())) == 1
    w = LabelWriter(tmp_path / "m.npy", 300, 200)
    w.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.tif"]


def test_predict_large_from_a_tiled_tiff_equals_the_array(seg, image, tmp_path):
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, image, tile=(64, 64))
    spec = TileSpec(tile=96)
    r = predict_large(
        seg, path, tmp_path / "out" / "labels.tif", spec, preview=tmp_path / "p.png", progress=False
    )
    ref = seg.decision(streamed(seg, ImageReader(image), spec))
    np.testing.assert_array_equal(tifffile.imread(r.labels), ref)
    from PIL import Image

    assert np.asarray(Image.open(r.preview)).shape == (200, 264, 3)


def test_cli_tiled_predict_writes_tiffs_resumes_and_refuses_resized_runs(seg, image, tmp_path, capsys):
    run = tmp_path / "run"
    seg.save(run)
    tifffile.imwrite(tmp_path / "a.tif", image, tile=(64, 64))
    argv = ["predict", "--run", str(run), str(tmp_path / "a.tif"), "--out", str(tmp_path / "o"), "--quiet"]
    assert main([*argv, "--tile", "96", "--tile-overlap", "0.5"]) == 0
    labels = tifffile.imread(tmp_path / "o" / "a.tif")
    ref = seg.decision(streamed(seg, ImageReader(image), TileSpec(tile=96, overlap=0.5)))
    np.testing.assert_array_equal(labels, ref)
    assert (tmp_path / "o" / "a_preview.png").is_file()
    assert main([*argv, "--tile", "96"]) == 0 and "1 already there" in capsys.readouterr().out
    resized = DeepSegmenter("unet", 3, model={"base_channels": 4, "depth": 3}, train={"resize": [64, 64]})
    resized.save(tmp_path / "resized")
    argv[2] = str(tmp_path / "resized")
    assert main([*argv, "--tile", "96", "--overwrite"]) == 2
    assert "trained resized to" in capsys.readouterr().err


def test_tiled_predict_through_onnxruntime_equals_the_torch_backend(seg, image, tmp_path):
    pytest.importorskip("onnxruntime")
    run = tmp_path / "run"
    seg.save(run)
    assert main(["export", "--run", str(run), "--format", "onnx", "--dynamic"]) == 0
    tifffile.imwrite(tmp_path / "a.tif", image, tile=(64, 64))
    for backend in ("torch", "onnxruntime"):
        argv = ["predict", "--run", str(run), str(tmp_path / "a.tif"), "--out", str(tmp_path / backend)]
        assert main([*argv, "--quiet", "--tile", "96", "--backend", backend]) == 0
    a, b = (tifffile.imread(tmp_path / backend / "a.tif") for backend in ("torch", "onnxruntime"))
    assert (a == b).mean() > 0.999  # argmax ties may flip on float rounding, nothing else


def test_instance_and_classical_methods_are_refused_with_one_line(image, tmp_path):
    from segscope.errors import UserError
    from segscope.factory import create_segmenter

    with pytest.raises(UserError, match="instance methods do not tile"):
        predict_large(create_segmenter("watershed_instances"), image, tmp_path / "a.tif", progress=False)
    with pytest.raises(UserError, match="needs a 2-D deep semantic run"):
        predict_large(create_segmenter("otsu"), image, tmp_path / "b.tif", progress=False)
    assert not list(tmp_path.iterdir())  # nothing written
