from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segscope.data import detect_format, open_dataset
from segscope.errors import DataError
from tests.conftest import shared_dataset, write_folder_dataset


def test_folder_layout_binary_masks(disc_dataset: Path):
    ds = open_dataset(disc_dataset)
    assert detect_format(disc_dataset) == "folder"
    assert len(ds) == 8 and ds.classes == ["background", "foreground"]
    image, mask = ds[0]
    assert image.shape == (48, 48, 1) and image.dtype == np.uint8
    assert mask.dtype == np.int64 and set(np.unique(mask)) == {0, 1}
    expected = np.asarray(Image.open(disc_dataset / "masks" / "img00.png")) > 127
    np.testing.assert_array_equal(mask, expected)


def test_index_masks_with_dataset_yaml(tmp_path: Path):
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(root / "images" / "a.jpg")
    Image.fromarray(np.array([[0, 1, 2, 255, 1]] * 4, np.uint8)).save(root / "masks" / "a.png")
    (root / "dataset.yaml").write_text("classes: [sky, road, car]\nignore_index: 255\n")
    ds = open_dataset(root)
    assert ds.classes == ["sky", "road", "car"] and ds.ignore_index == 255
    np.testing.assert_array_equal(ds.load_mask(0)[0], [0, 1, 2, 255, 1])
    assert ds.load_image(0).shape == (4, 5, 3)


def test_voc_layout(tmp_path: Path):
    root = tmp_path / "VOC"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    pal = Image.new("P", (6, 4))
    pal.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
    pal.putdata([0, 1, 1, 255, 0, 15] * 4)
    for stem in ("2007_000001", "2007_000002"):
        Image.fromarray(np.full((4, 6, 3), 90, np.uint8)).save(root / "JPEGImages" / f"{stem}.jpg")
        pal.save(root / "SegmentationClass" / f"{stem}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("2007_000001\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("2007_000002\n")
    ds = open_dataset(root, "val")
    assert detect_format(root) == "voc" and len(ds) == 1 and ds.num_classes == 21 and ds.ignore_index == 255
    np.testing.assert_array_equal(ds.load_mask(0)[0], [0, 1, 1, 255, 0, 15])


def test_camvid_and_isbi_real_layouts():
    camvid = open_dataset(shared_dataset("camvid"), "val")
    assert len(camvid) == 101 and camvid.num_classes == 11 and camvid.ignore_index == 11
    assert camvid.groups[0] == camvid.stems[0].rsplit("_", 1)[0]
    isbi = open_dataset(shared_dataset("isbi2012"))
    assert len(isbi) == 30 and isbi.classes == ["membrane", "cell"]
    image, mask = isbi[0]
    assert image.shape == (512, 512, 1) and 0.15 < (mask == 0).mean() < 0.35  # membranes ~ a fifth


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("corrupt_image", "cannot read image"),
        ("size_mismatch", "differs from image"),
        ("bad_label", "outside the 2 declared classes"),
        ("orphan_mask", "mask without image"),
    ],
)
def test_bad_input_names_the_file(tmp_path: Path, breakage: str, message: str):
    root = write_folder_dataset(tmp_path / "d", n=3)
    target = root / "images" / "img01.png"
    if breakage == "corrupt_image":
        target.write_bytes(b"not a png at all")
    elif breakage == "size_mismatch":
        Image.fromarray(np.zeros((40, 48), np.uint8)).save(root / "masks" / "img01.png")
    elif breakage == "bad_label":
        (root / "dataset.yaml").write_text("mask_mode: index\nclasses: [bg, fg]\n")
        for m in (root / "masks").iterdir():
            Image.fromarray((np.asarray(Image.open(m)) > 0).astype(np.uint8)).save(m)
        Image.fromarray(np.full((48, 48), 7, np.uint8)).save(root / "masks" / "img01.png")
    else:
        Image.fromarray(np.zeros((48, 48), np.uint8)).save(root / "masks" / "lonely.png")
    with pytest.raises(DataError, match=message) as err:
        open_dataset(root).validate()
    assert "\n" not in str(err.value)
    assert ("lonely.png" if breakage == "orphan_mask" else "img01.png") in str(err.value)


def test_empty_and_missing_dataset(tmp_path: Path):
    (tmp_path / "empty" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="empty"):
        open_dataset(tmp_path / "empty")
    with pytest.raises(DataError, match="not found"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "odd").mkdir()
    with pytest.raises(DataError, match="unknown dataset layout"):
        open_dataset(tmp_path / "odd")
