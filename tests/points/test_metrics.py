"""PointNet's part IoU by hand: the absent-part rule, instance vs class averaging."""

from __future__ import annotations

import numpy as np
import pytest

from segscope.points.metrics import PartIoU, part_ious, shape_miou


def test_part_ious_by_hand():
    true, pred = np.array([1, 1, 2, 2]), np.array([1, 2, 2, 2])
    np.testing.assert_allclose(part_ious(pred, true, 2), [1 / 2, 2 / 3])
    # Chair (4 parts): part 4 in neither labelling counts 1
    np.testing.assert_allclose(
        part_ious(np.array([1, 2, 3, 3]), np.array([1, 2, 2, 3]), 4), [1, 1 / 2, 1 / 2, 1]
    )
    assert shape_miou(np.array([1, 2, 3, 3]), np.array([1, 2, 2, 3]), 4) == pytest.approx(0.75)
    # a part predicted but absent from the truth scores 0, not 1
    np.testing.assert_allclose(part_ious(np.array([2, 1]), np.array([1, 1]), 2), [0.5, 0.0])
    with pytest.raises(ValueError, match="labels"):
        part_ious(np.array([1, 2]), np.array([1]), 2)


def test_instance_and_class_averaging():
    meter = PartIoU()
    assert meter.add("Knife", np.array([1, 2, 2, 2]), np.array([1, 1, 2, 2])) == pytest.approx(7 / 12)
    assert meter.add("Knife", np.array([1, 2]), np.array([1, 2])) == 1.0
    assert meter.add("Cap", np.array([1, 1, 1]), np.array([1, 1, 1])) == 1.0  # the peak absent from both
    assert meter.add("Chair", np.array([1, 2, 3, 3]), np.array([1, 2, 2, 3])) == pytest.approx(0.75)
    s = meter.summary()
    assert s["instance_miou"] == pytest.approx((7 / 12 + 1 + 1 + 0.75) / 4)  # 0.8333: mean over shapes
    assert s["class_miou"] == pytest.approx(((7 / 12 + 1) / 2 + 1 + 0.75) / 3)  # 0.8472: mean over categories
    assert s["n_shapes"] == 4 and s["per_category"]["Knife"]["n_shapes"] == 2
    assert s["per_category"]["Knife"]["miou"] == pytest.approx((7 / 12 + 1) / 2)
    assert s["per_category"]["Knife"]["part_iou"] == pytest.approx({"blade": 0.75, "handle": (2 / 3 + 1) / 2})
    assert s["per_category"]["Chair"]["part_iou"]["arm"] == 1.0
    with pytest.raises(ValueError):
        PartIoU().summary()
