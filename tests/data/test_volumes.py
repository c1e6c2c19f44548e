"""Volume I/O, the volume layout, VolumeDataset z-blocks and the 2-D SliceDataset view.

References are independent of the code under test: tifffile's and nibabel's own headers, SimpleITK
reading and writing the same NIfTI files, PIL reading the slice PNGs, and hand-computed values.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segscope.data import SegmentationDataset, detect_format, open_dataset
from segscope.data.splits import fold_datasets, make_splits
from segscope.data.volume_dataset import SliceDataset, VolumeDataset, split_blocks
from segscope.data.volumes import read_label_volume, read_volume, volume_info, write_volume
from segscope.errors import DataError
from tests.conftest import shared_dataset

SPACING = (2.5, 0.5, 0.25)  # (z, y, x), anisotropic


def _volume(shape=(4, 5, 6), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


def _one_line(exc: pytest.ExceptionInfo, path: Path | str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


def _write_slices(folder: Path, volume: np.ndarray, names=None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for z, sl in enumerate(volume):
        Image.fromarray(sl).save(folder / (names[z] if names else f"{z:03d}.png"))


def _disc_volume(depth=10, size=24, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A bright ball in a noisy dark volume and its 0/1 mask, ``(D, H, W)`` each."""
    zz, yy, xx = np.mgrid[:depth, :size, :size]
    mask = (
        (zz - depth / 2) ** 2 / (depth / 2.5) ** 2 + ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / 49
    ) <= 1
    noise = np.random.default_rng(seed).normal(0, 10, mask.shape)
    return (60 + 120 * mask + noise).clip(0, 255).astype(np.uint8), mask.astype(np.uint8)


def _volume_root(root: Path, depth=17) -> Path:
    """A single-volume slice layout: images/*.png + masks/*.png (0/255)."""
    image, mask = _disc_volume(depth)
    _write_slices(root / "images", image)
    _write_slices(root / "masks", mask * 255)
    return root


# -- I/O round trips -----------------------------------------------------------------------------
def test_tiff_round_trip_keeps_anisotropic_spacing(tmp_path: Path):
    import tifffile

    a = _volume()
    write_volume(tmp_path / "v.tif", a, SPACING)
    vol = read_volume(tmp_path / "v.tif")
    np.testing.assert_array_equal(vol.array, a)
    assert vol.spacing == pytest.approx(SPACING)
    with tifffile.TiffFile(tmp_path / "v.tif") as tif:  # what ImageJ / Fiji would read
        assert tif.imagej_metadata["spacing"] == pytest.approx(2.5) and len(tif.pages) == 4
        num, den = tif.pages[0].tags["XResolution"].value
        assert num / den == pytest.approx(1 / 0.25)
    assert volume_info(tmp_path / "v.tif").shape == (4, 5, 6)
    assert list(tmp_path.iterdir()) == [tmp_path / "v.tif"]  # the temporary file was renamed


def test_tiff_written_by_tifffile_and_rgb_volume(tmp_path: Path):
    import tifffile

    a = _volume((3, 4, 5))
    tifffile.imwrite(tmp_path / "ij.tif", a, imagej=True, resolution=(2.0, 4.0), metadata={"spacing": 7.0})
    assert read_volume(tmp_path / "ij.tif").spacing == pytest.approx((7.0, 0.25, 0.5))
    tifffile.imwrite(tmp_path / "plain.tif", a, photometric="minisblack")  # no unit: spacing 1
    assert read_volume(tmp_path / "plain.tif").spacing == (1.0, 1.0, 1.0)
    rgb = _volume((3, 4, 5, 3), seed=1)
    write_volume(tmp_path / "rgb.tif", rgb, SPACING)
    np.testing.assert_array_equal(read_volume(tmp_path / "rgb.tif").array, rgb)
    luma = rgb[..., 0].astype(int) * 299 + rgb[..., 1].astype(int) * 587 + rgb[..., 2].astype(int) * 114 + 500
    np.testing.assert_array_equal(read_volume(tmp_path / "rgb.tif", channels=1).array, luma // 1000)


def test_nifti_axis_order_against_nibabel_and_simpleitk(tmp_path: Path):
    import nibabel
    import SimpleITK as sitk

    a = _volume((4, 5, 6))  # (z, y, x), three different lengths
    path = write_volume(tmp_path / "v.nii.gz", a, SPACING)
    assert nibabel.load(path).shape == (6, 5, 4)  # NIfTI stores (x, y, z)
    assert nibabel.load(path).header.get_zooms() == pytest.approx((0.25, 0.5, 2.5))
    img = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), a)  # (z, y, x)
    assert img.GetSpacing() == pytest.approx(SPACING[::-1])  # (x, y, z)
    vol = read_volume(path)
    np.testing.assert_array_equal(vol.array, a)
    assert vol.spacing == pytest.approx(SPACING)
    # a file SimpleITK wrote: read_volume agrees with SimpleITK's (z, y, x) array and reversed spacing
    other = sitk.GetImageFromArray(_volume((3, 7, 2), seed=2))
    other.SetSpacing((0.3, 0.7, 4.0))
    sitk.WriteImage(other, str(tmp_path / "sitk.nii"))
    vol = read_volume(tmp_path / "sitk.nii")
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(other))
    assert vol.spacing == pytest.approx((4.0, 0.7, 0.3))


def test_npy_round_trip_and_rescaling(tmp_path: Path):
    a = _volume()
    write_volume(tmp_path / "v.npy", a, SPACING)
    vol = read_volume(tmp_path / "v.npy")
    np.testing.assert_array_equal(vol.array, a)
    assert vol.spacing == (1.0, 1.0, 1.0)  # .npy keeps no spacing
    wide = np.zeros((2, 2, 2), np.uint16)
    wide[0, 0, 0], wide[1, 1, 1], wide[0, 1, 0] = 1000, 3000, 2000  # min 0 (elsewhere), max 3000
    np.save(tmp_path / "w.npy", wide)
    got = read_volume(tmp_path / "w.npy").array  # min/max over the whole volume -> 0..255
    assert got[1, 1, 1] == 255 and got[0, 0, 0] == 85 and got[0, 1, 0] == 170 and got[1, 0, 0] == 0


def test_label_volumes_integer_checks(tmp_path: Path):
    labels = np.random.default_rng(0).integers(0, 4, (3, 4, 5))
    for name in ("l.tif", "l.nii.gz", "l.npy"):
        write_volume(tmp_path / name, labels, SPACING)
        vol = read_label_volume(tmp_path / name)
        assert vol.array.dtype == np.int64
        np.testing.assert_array_equal(vol.array, labels)
    np.save(tmp_path / "whole.npy", labels.astype(np.float32))
    np.testing.assert_array_equal(read_label_volume(tmp_path / "whole.npy").array, labels)
    np.save(tmp_path / "half.npy", labels + 0.5)
    with pytest.raises(DataError, match="non-integer label values") as exc:
        read_label_volume(tmp_path / "half.npy")
    _one_line(exc, tmp_path / "half.npy")


def test_slice_folder_in_natural_order(tmp_path: Path):
    a = _volume((11, 6, 7))
    names = [f"z{z}.png" for z in range(11)]  # z10 sorts after z9, not after z1
    _write_slices(tmp_path / "s", a, names)
    vol = read_volume(tmp_path / "s")
    np.testing.assert_array_equal(vol.array, a)
    assert vol.array.shape == (11, 6, 7) and volume_info(tmp_path / "s").shape == (11, 6, 7)


# -- one-line errors -----------------------------------------------------------------------------
def test_error_messages_name_the_file(tmp_path: Path):
    for name in ("bad.tif", "bad.nii.gz", "bad.npy"):
        (tmp_path / name).write_bytes(b"not a volume at all")
        with pytest.raises(DataError, match="cannot read volume|not a NumPy") as exc:
            read_volume(tmp_path / name)
        _one_line(exc, tmp_path / name)
    with pytest.raises(DataError, match="not found") as exc:
        read_volume(tmp_path / "missing.nii")
    _one_line(exc, tmp_path / "missing.nii")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty volume folder") as exc:
        read_volume(tmp_path / "empty")
    _one_line(exc, tmp_path / "empty")
    _write_slices(tmp_path / "odd", _volume((3, 8, 8)))
    Image.fromarray(_volume((8, 6))).save(tmp_path / "odd" / "003.png")
    with pytest.raises(DataError) as exc:
        read_volume(tmp_path / "odd")
    assert "slice 003.png is 6x8, the others 8x8" in _one_line(exc, tmp_path / "odd")


def test_image_mask_mismatch_errors(tmp_path: Path):
    for case, mask in (("count", np.zeros((3, 5, 6), np.uint8)), ("shape", np.zeros((4, 5, 7), np.uint8))):
        root = tmp_path / case
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
        np.save(root / "images" / "v.npy", _volume())
        np.save(root / "masks" / "v.npy", mask)
        ds = open_dataset(root)
        with pytest.raises(DataError) as exc:
            ds.load_mask(0)
        msg = _one_line(exc, root / "masks" / "v.npy")
        assert (
            ("3 mask slices, image v.npy has 4" in msg)
            if case == "count"
            else ("7x5" in msg and "6x5" in msg)
        )
    with pytest.raises(DataError, match="cannot form 20 z-blocks"):
        open_dataset(_volume_root(tmp_path / "few"), format="volume", blocks=20)
    with pytest.raises(DataError, match="apply to volumes"):
        open_dataset(tmp_path / "few", spacing=(1, 1, 1))


# -- VolumeDataset -------------------------------------------------------------------------------
def test_blocks_cover_every_slice_once_and_kfold_tests_each_block(tmp_path: Path):
    root = _volume_root(tmp_path / "vol", depth=17)
    assert detect_format(root) == "folder"  # a slice folder stays 2-D unless asked for
    ds = open_dataset(root, format="volume")
    assert isinstance(ds, VolumeDataset) and ds.ndim == 3 and len(ds) == 5  # one volume: 5 blocks
    zs = [z for b in ds.blocks for z in range(b.z0, b.z1)]
    assert zs == list(range(17))  # contiguous, in order, each slice once
    assert {b.z1 - b.z0 for b in ds.blocks} <= {3, 4}
    assert ds.stems[0] == "vol_z000-003" and set(ds.groups) == {"vol"}
    whole = np.concatenate([ds.load_image(i)[..., 0] for i in range(len(ds))])
    expected = np.stack([np.asarray(Image.open(root / "images" / f"{z:03d}.png")) for z in range(17)])
    np.testing.assert_array_equal(whole, expected)
    mask = np.concatenate([ds.load_mask(i) for i in range(len(ds))])
    np.testing.assert_array_equal(
        mask, np.stack([np.asarray(Image.open(p)) > 127 for p in sorted((root / "masks").iterdir())])
    )
    splits = make_splits(ds, "kfold:5", seed=3)
    assert sorted(i for s in splits for i in s.test) == list(range(5))  # each block tested once
    for s in splits:
        test_z = {z for i in s.test for z in range(ds.blocks[i].z0, ds.blocks[i].z1)}
        train_z = {z for i in s.train for z in range(ds.blocks[i].z0, ds.blocks[i].z1)}
        assert len(s.test) == 1 and not test_z & train_z and test_z | train_z == set(range(17))
    assert split_blocks(0, 10, 3) == split_blocks(0, 10, 3) and [b.z1 for b in split_blocks(0, 10, 3)] == [
        3,
        6,
        10,
    ]


def test_fold_datasets_keep_volume_options(tmp_path: Path):
    root = _volume_root(tmp_path / "vol", depth=12)
    ds = open_dataset(root, format="volume", blocks=4, spacing=(3, 1, 1))
    splits = make_splits(ds, "kfold:4", seed=0)
    for folds in (
        fold_datasets(splits, root, format="volume", dataset=ds),
        fold_datasets(splits, root, format="volume", **ds.open_options),
    ):
        for s, train, test in folds:
            assert isinstance(test, VolumeDataset) and test.spacing == (3.0, 1.0, 1.0)
            assert test.stems == [ds.stems[i] for i in s.test] and train.stems == [
                ds.stems[i] for i in s.train
            ]
    s, _, plain = fold_datasets(splits, root, format="volume")[0]  # reopened without them: 5 blocks
    assert plain.stems != [ds.stems[i] for i in s.test] and plain.spacing == (1.0, 1.0, 1.0)


def test_volume_layout_files_and_subfolders(tmp_path: Path):
    root = tmp_path / "multi"
    (root / "train" / "images").mkdir(parents=True)
    (root / "train" / "masks").mkdir()
    image, mask = _disc_volume(6, 16)
    write_volume(root / "train" / "images" / "a.nii.gz", image, SPACING)
    write_volume(root / "train" / "masks" / "a.nii.gz", mask * 255, SPACING)
    np.save(root / "train" / "images" / "b.npy", image)
    np.save(root / "train" / "masks" / "b.npy", mask)
    _write_slices(root / "train" / "images" / "c", image)
    _write_slices(root / "train" / "masks" / "c", mask * 255)
    assert detect_format(root) == "volume"
    ds = open_dataset(root)
    assert len(ds) == 3 and ds.groups == ["a", "b", "c"] and ds.classes == ["background", "foreground"]
    assert ds.spacing == pytest.approx(SPACING)  # the first volume's header
    for i in range(3):
        np.testing.assert_array_equal(ds.load_mask(i), mask)
        np.testing.assert_array_equal(ds.load_image(i)[..., 0], image)
    assert ds.class_pixel_counts().tolist() == [3 * int((mask == 0).sum()), 3 * int(mask.sum())]
    (root / "dataset.yaml").write_text("spacing: [9, 2, 2]\n")
    assert open_dataset(root).spacing == (9.0, 2.0, 2.0)
    assert open_dataset(root, spacing=(1, 2, 3)).spacing == (1.0, 2.0, 3.0)
    (root / "dataset.yaml").write_text("spacing: [9, 2]\n")
    with pytest.raises(DataError, match="spacing must be"):
        open_dataset(root)


def test_index_labels_multipage_tiff_detection_and_single_read(tmp_path: Path, monkeypatch):
    root = tmp_path / "tifs"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    labels = np.random.default_rng(0).integers(0, 3, (5, 6, 7))
    write_volume(root / "images" / "v.tif", _volume((5, 6, 7)), SPACING)
    write_volume(root / "masks" / "v.tif", labels)
    assert detect_format(root) == "volume"
    ds = open_dataset(root, blocks=2)
    assert ds.classes == ["class0", "class1", "class2"] and ds.codec.mode == "index"
    np.testing.assert_array_equal(np.concatenate([ds.load_mask(0), ds.load_mask(1)]), labels)
    import segscope.data.volume_layout as layout

    calls = []
    real = layout.read_volume
    monkeypatch.setattr(layout, "read_volume", lambda *a, **k: calls.append(a) or real(*a, **k))
    fresh = open_dataset(root, blocks=2)
    for view in (fresh.subset([1]), fresh.subset([0]), fresh.slices()):
        view.load_image(0)
    assert len(calls) == 1  # read once, shared by subsets and the slice view
    again = pickle.loads(pickle.dumps(fresh))  # a process pool: the arrays are not pickled, reread there
    np.testing.assert_array_equal(again.load_mask(1), labels[2:])  # blocks z0-2, z2-5
    assert len(calls) == 1 and len(pickle.dumps(fresh)) < 2000
    (root / "dataset.yaml").write_text("classes: [a, b]\n")
    fewer = open_dataset(root, blocks=2)
    with pytest.raises(DataError, match=r"label values \[2\] outside the 2 declared classes") as exc:
        fewer.validate()
    _one_line(exc, root / "masks" / "v.tif")
    single = tmp_path / "pages"
    (single / "images").mkdir(parents=True)
    (single / "masks").mkdir()
    Image.fromarray(_volume((4, 4))).save(single / "images" / "a.tif")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(single / "masks" / "a.png")
    assert detect_format(single) == "folder"  # single-page TIFFs are 2-D images


# -- SliceDataset --------------------------------------------------------------------------------
def test_slice_dataset_members_and_classical_fit(tmp_path: Path):
    import segscope
    from segscope.data import class_presence
    from segscope.data.torch_dataset import TorchSegmentationDataset
    from segscope.metrics import ConfusionMatrix

    ds = open_dataset(_volume_root(tmp_path / "vol", depth=10), format="volume", blocks=2)
    train = ds.subset([0])
    slices = train.slices()
    assert isinstance(slices, SegmentationDataset) and isinstance(slices, SliceDataset)
    assert len(slices) == 5 and len(ds.slices()) == 10 and slices.channels == 1
    assert len(set(ds.slices().stems)) == 10 and slices.stems[0] == "vol_z000"
    np.testing.assert_array_equal(slices.load_image(3), ds.load_image(0)[3])
    np.testing.assert_array_equal(slices[2][1], ds.load_mask(0)[2])
    assert slices.class_pixel_counts().tolist() == train.class_pixel_counts().tolist()
    assert slices.subset([4, 0]).stems == ["vol_z004", "vol_z000"]
    assert slices.with_samples(slices.samples[1:3]).stems == ["vol_z001", "vol_z002"]
    assert slices.with_channels(3).load_image(0).shape == (24, 24, 3)
    assert class_presence(slices).shape == (5, 2)
    x, y = TorchSegmentationDataset(slices)[0]
    assert tuple(x.shape) == (1, 24, 24) and tuple(y.shape) == (24, 24)
    assert "otsu" in segscope.list_models()
    model = segscope.create_model("otsu", num_classes=2, in_channels=1)
    model.fit(slices, progress=False)
    test = ds.subset([1]).slices()
    cm = ConfusionMatrix(2)
    for i in range(len(test)):
        image, mask = test[i]
        if mask.sum() > 30:  # slices through the ball (Otsu splits the noise of an empty slice)
            cm.update(model.predict(image), mask)
    assert cm.mean_iou() > 0.9  # a bright ball on a dark background: Otsu separates it


# -- real data -----------------------------------------------------------------------------------
def test_em_mito3d_as_one_volume():
    root = shared_dataset("em_mito3d") / "train"
    assert detect_format(root) == "folder"
    ds = open_dataset(root, format="volume", spacing=(5, 5, 5))
    assert len(ds) == 5 and sum(b.z1 - b.z0 for b in ds.blocks) == 165
    assert ds.classes == ["background", "foreground"] and ds.spacing == (5.0, 5.0, 5.0)
    image, mask = ds[0]
    assert image.shape == (33, 384, 384, 1) and image.dtype == np.uint8 and mask.shape == (33, 384, 384)
    for z in (0, 32):
        np.testing.assert_array_equal(
            image[z, ..., 0], np.asarray(Image.open(root / "images" / f"{z:03d}.png"))
        )
        np.testing.assert_array_equal(mask[z], np.asarray(Image.open(root / "masks" / f"{z:03d}.png")) > 127)
    assert len(ds.slices()) == 165
    counts = ds.class_pixel_counts()
    assert counts.sum() == 165 * 384 * 384 and counts[1] / counts.sum() == pytest.approx(0.114, abs=0.002)


def test_isbi2012_as_a_volume():
    root = shared_dataset("isbi2012")
    assert detect_format(root) == "isbi"
    ds = open_dataset(root, format="volume")
    assert ds.classes == ["membrane", "cell"] and ds.name == "isbi2012" and ds.codec.mode == "binary"
    assert sum(b.z1 - b.z0 for b in ds.blocks) == 30 and ds.spacing == (50.0, 4.0, 4.0)
    image, mask = ds[len(ds) - 1]
    np.testing.assert_array_equal(image[-1, ..., 0], np.asarray(Image.open(root / "images" / "29.png")))
    np.testing.assert_array_equal(mask[-1], np.asarray(Image.open(root / "masks" / "29.png")) > 127)
    assert open_dataset(root, format="volume", spacing=(40, 4, 4)).spacing == (40.0, 4.0, 4.0)
