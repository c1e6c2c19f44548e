"""The BSDS boundary benchmark on hand-made cases: one-to-one matching, counts, ODS/OIS/AP by hand."""

import numpy as np
import pytest
from PIL import Image

from segscope.classical.edges import EDGE_METHODS
from segscope.data.annotators import MultiAnnotatorDataset
from segscope.errors import DataError
from segscope.metrics.boundary_benchmark import (
    boundary_counts,
    human_counts,
    match_boundaries,
    max_distance,
    ods_ois_ap,
)


def column(x: int, rows: range, shape=(40, 40)) -> np.ndarray:
    a = np.zeros(shape, bool)
    a[rows.start : rows.stop, x] = True
    return a


def test_matching_radius_and_one_to_one_pairs():
    truth = column(10, range(0, 20))
    assert match_boundaries(column(12, range(0, 20)), truth, 3.0)[1] == 20  # 2 px away: within 3
    assert match_boundaries(column(14, range(0, 20)), truth, 3.0)[1] == 0  # 4 px away: outside
    matched, n = match_boundaries(column(12, range(0, 20)), truth, 2.0)  # exactly 2 px: inside
    assert n == 20 and matched.sum() == 20
    # two predicted pixels beside one true pixel: one pair only (a dilation-based score would count both)
    one = np.zeros((11, 11), bool)
    one[5, 5] = True
    two = np.zeros((11, 11), bool)
    two[5, 4] = two[5, 6] = True
    matched, n = match_boundaries(two, one, 1.5)
    assert n == 1 and matched.sum() == 1
    # a prediction twice as long as the truth: half of it matched
    matched, n = match_boundaries(column(6, range(0, 20)), column(5, range(0, 10)), 1.5)
    assert n == 10 and matched[:10, 6].all() and not matched[10:].any()


def test_counts_against_two_annotators_and_thinning():
    truths = [column(5, range(0, 10)), column(15, range(0, 10))]
    soft = np.zeros((40, 40))
    soft[0:10, 6] = 0.8
    soft[0:10, 30] = 0.3
    tolerance = 2.5 / max_distance((40, 40), 1.0)  # a 2.5-pixel radius
    counts = boundary_counts(soft, truths, np.array([0.5, 0.2]), tolerance)
    # t = 0.5: the line beside annotator A only; t = 0.2: plus an unmatched line
    np.testing.assert_array_equal(counts, [[10, 20, 10, 10], [10, 20, 10, 20]])
    thick = np.zeros((40, 40))
    thick[0:10, 4:7] = 1.0  # three pixels wide: thinned to one before matching
    cnt_r, _, cnt_p, sum_p = boundary_counts(thick, truths[:1], np.array([0.5]), tolerance)[0]
    assert 8 <= sum_p <= 10 and cnt_p == sum_p == cnt_r  # one centre line (ends shrink), all matched


def test_ods_ois_ap_by_hand():
    per_image = [np.array([[5, 10, 5, 5], [8, 10, 8, 16]]), np.array([[0, 10, 0, 0], [6, 10, 6, 12]])]
    r = ods_ois_ap(per_image, np.array([0.6, 0.3]))

    def f(p, rec):
        return 2 * p * rec / (p + rec)

    # dataset counts per threshold: R = 5/20, P = 5/5 and R = 14/20, P = 14/28 -> the second is better
    assert r["ods_f"] == pytest.approx(f(0.5, 0.7)) and r["ods_threshold"] == 0.3
    # image 1 is best at 0.6 (F 0.667 > 0.615), image 2 at 0.3 (F 0 at 0.6, nothing predicted)
    assert r["ois_f"] == pytest.approx(f(11 / 17, 11 / 20))
    assert r["ap"] == pytest.approx((1.0 + 0.5) / 2 * (0.7 - 0.25))


def test_human_ceiling_is_one_for_identical_annotators_and_lower_otherwise():
    a = column(5, range(0, 20))
    assert ods_ois_ap([human_counts([a, a, a])], np.array([0.5]))["ods_f"] == 1.0
    counts = human_counts([a, column(20, range(0, 20))], tolerance=0.05)  # no pixel within 2.8 px
    assert counts[0, 0] == 0 and counts[0, 1] == 40


@pytest.mark.parametrize("name", list(EDGE_METHODS))
def test_edge_methods_find_a_square(name):
    image = np.full((64, 64, 3), 40, np.uint8)
    image[16:48, 16:48] = 200
    truth = np.zeros((64, 64), bool)
    truth[16:48, 16] = truth[16:48, 47] = truth[16, 16:48] = truth[47, 16:48] = True
    soft = EDGE_METHODS[name](image)
    assert soft.shape == (64, 64) and soft.max() == pytest.approx(1.0)
    thresholds = np.linspace(0.05, 0.95, 19)
    r = ods_ois_ap([boundary_counts(soft, [truth], thresholds, tolerance=0.03)], thresholds)
    # edge detectors find the square alone; region methods also split the flat areas into superpixels
    assert r["ods_f"] > (0.85 if name in ("sobel", "canny") else 0.6), r["ods_f"]
    assert r["ods_recall"] > 0.9, r["ods_recall"]


def test_multi_annotator_folder(tmp_path):
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(tmp_path / "images" / "a.jpg")
    seg = tmp_path / "segmentations" / "a"
    seg.mkdir(parents=True)
    labels = np.ones((8, 10), np.uint16)
    labels[:, 5:] = 300  # 16-bit region ids survive
    Image.fromarray(labels).save(seg / "1.png")
    Image.fromarray(np.ones((8, 10), np.uint16)).save(seg / "2.png")
    data = MultiAnnotatorDataset(tmp_path)
    first, second = data.load_segmentations(0)
    assert set(np.unique(first)) == {1, 300} and len(np.unique(second)) == 1
    bounds = data.load_boundaries(0)  # no boundaries/: region contours
    assert bounds[0][:, 4:6].all() and bounds[0].sum() == 16 and not bounds[1].any()
    Image.fromarray(np.ones((8, 9), np.uint16)).save(seg / "3.png")
    with pytest.raises(DataError, match=r"3.png: annotation is 9x8, image is 10x8"):
        data.load_segmentations(0)
