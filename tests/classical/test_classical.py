from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from skimage import filters, measure, morphology, segmentation

import segscope
from segscope.classical import otsu_foreground, watershed_instances
from segscope.classical.threshold import adaptive_foreground
from segscope.errors import UserError


def test_otsu_equals_scikit_image_and_finds_a_bright_square():
    rng = np.random.default_rng(0)
    grey = 0.2 + 0.05 * rng.standard_normal((40, 40))
    grey[10:30, 10:30] += 0.5
    fg = otsu_foreground(grey)
    np.testing.assert_array_equal(fg, grey > filters.threshold_otsu(grey))
    truth = np.zeros((40, 40), bool)
    truth[10:30, 10:30] = True
    assert (fg == truth).all()


def test_adaptive_threshold_equals_scikit_image():
    grey = np.random.default_rng(1).random((30, 30))
    np.testing.assert_array_equal(
        adaptive_foreground(grey, block_size=11, offset=0.01),
        grey > filters.threshold_local(grey, 11, offset=0.01),
    )
    with pytest.raises(ValueError, match="odd integer"):
        adaptive_foreground(grey, block_size=10)


def test_watershed_splits_two_touching_discs():
    yy, xx = np.mgrid[:40, :60]
    discs = ((yy - 20) ** 2 + (xx - 20) ** 2 < 14**2) | ((yy - 20) ** 2 + (xx - 40) ** 2 < 14**2)
    instances, lines = watershed_instances(discs.astype(float), sigma=0, h=0.2, markers="distance")
    inside = np.unique(instances[discs & ~lines])
    assert len(inside[inside > 0]) == 2
    assert lines[20, 30]  # the neck between the discs is cut
    # the same as calling scikit-image directly
    dist = ndimage.distance_transform_edt(discs.astype(float) > filters.threshold_otsu(discs.astype(float)))
    seeds = measure.label(morphology.h_maxima(dist, 0.2 * dist.max()))
    np.testing.assert_array_equal(instances, segmentation.watershed(-dist, seeds, watershed_line=True))


def test_tuning_learns_polarity_on_dark_membranes(tmp_path: Path):
    from PIL import Image

    root = tmp_path / "membranes"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        mask = np.ones((48, 48), np.uint8)
        mask[:, 12 + i :: 16] = 0  # dark vertical membranes, class 0
        mask[10 + i :: 20, :] = 0
        image = (60 + 130 * mask + rng.normal(0, 10, mask.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        Image.fromarray(mask * 255).save(root / "masks" / f"{i}.png")
    ds = segscope.open_dataset(root)
    seg = segscope.create_segmenter("otsu", num_classes=2).fit(ds)
    assert seg.params["invert"] is False  # bright cells are the foreground class 1
    image, mask = ds[0]
    assert (seg.predict(image) == mask).mean() > 0.95
    seg.save(tmp_path / "run")
    again = segscope.load(tmp_path / "run")
    assert again.params == seg.params
    images = [ds[i][0] for i in range(4)]
    serial = [seg.predict(im) for im in images]
    parallel = seg.predict_many(images, workers=2)
    assert all((a == b).all() for a, b in zip(serial, parallel))


def test_bad_options_and_multiclass_refused():
    with pytest.raises(UserError, match="unknown options"):
        segscope.create_segmenter("otsu", num_classes=2, smothing=1)
    with pytest.raises(UserError, match="one foreground class"):
        segscope.create_segmenter("watershed", num_classes=3)
