import multiprocessing
import os

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, jaccard_score, recall_score

from segscope.metrics import ConfusionMatrix

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_hand_computed_3x3_with_ignore():
    target = np.array([0, 0, 1, 1, 2, 2, 2, 255])
    pred = np.array([0, 1, 1, 1, 2, 0, 2, 1])
    cm = ConfusionMatrix(3, ignore_index=255).update(pred, target)
    # rows = true, cols = predicted; the 255 pixel is skipped
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    assert cm.total == 7
    # IoU = TP / (row + col - TP): c0 1/(2+2-1), c1 2/(2+3-2), c2 2/(3+2-2)
    np.testing.assert_allclose(cm.iou(), [1 / 3, 2 / 3, 2 / 3])
    assert cm.mean_iou() == pytest.approx(5 / 9)
    assert cm.pixel_accuracy() == pytest.approx(5 / 7)
    np.testing.assert_allclose(cm.class_accuracy(), [1 / 2, 1, 2 / 3])
    assert cm.mean_class_accuracy() == pytest.approx((1 / 2 + 1 + 2 / 3) / 3)
    assert cm.frequency_weighted_iou() == pytest.approx(2 / 7 * 1 / 3 + 2 / 7 * 2 / 3 + 3 / 7 * 2 / 3)
    # Dice = 2 TP / (row + col): c0 2/4, c1 4/5, c2 4/5
    np.testing.assert_allclose(cm.dice(), [2 / 4, 4 / 5, 4 / 5])


def test_class_absent_from_both_maps_is_nan_and_left_out_of_the_means():
    cm = ConfusionMatrix(3).update(np.array([0, 1, 1]), np.array([0, 1, 0]))
    iou = cm.iou()
    assert np.isnan(iou[2]) and np.isnan(cm.dice()[2]) and np.isnan(cm.class_accuracy()[2])
    assert cm.mean_iou() == pytest.approx((1 / 2 + 1 / 2) / 2)
    # a class only predicted has IoU 0, recall undefined
    cm = ConfusionMatrix(3).update(np.array([2, 1]), np.array([1, 1]))
    np.testing.assert_allclose(cm.iou(), [np.nan, 1 / 2, 0.0])
    assert cm.mean_class_accuracy() == pytest.approx(1 / 2)


def test_empty_matrix_scores_are_nan():
    cm = ConfusionMatrix(2, ignore_index=9).update(np.array([0, 1]), np.array([9, 9]))
    assert cm.total == 0
    assert np.isnan(cm.pixel_accuracy()) and np.isnan(cm.mean_iou()) and np.isnan(cm.frequency_weighted_iou())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_scikit_learn_on_random_maps_with_an_ignore_index(seed):
    rng = np.random.default_rng(seed)
    k = 5
    target = rng.integers(0, k, (40, 100))
    target[rng.random(target.shape) < 0.1] = 255
    pred = np.where(
        rng.random(target.shape) < 0.6, np.minimum(target, k - 1), rng.integers(0, k, target.shape)
    )
    pred = pred.astype(np.uint8)
    cm = ConfusionMatrix(k, ignore_index=255).update(pred, target)
    keep = target != 255
    t, p = target[keep], pred[keep]
    labels = list(range(k))
    np.testing.assert_array_equal(cm.matrix, confusion_matrix(t, p, labels=labels))
    np.testing.assert_allclose(cm.iou(), jaccard_score(t, p, average=None, labels=labels))
    np.testing.assert_allclose(cm.dice(), f1_score(t, p, average=None, labels=labels))
    np.testing.assert_allclose(cm.class_accuracy(), recall_score(t, p, average=None, labels=labels))
    assert cm.pixel_accuracy() == pytest.approx(accuracy_score(t, p))
    assert cm.mean_iou() == pytest.approx(jaccard_score(t, p, average="macro", labels=labels))
    assert cm.frequency_weighted_iou() == pytest.approx(
        jaccard_score(t, p, average="weighted", labels=labels)
    )


def test_merging_two_halves_equals_the_whole():
    rng = np.random.default_rng(3)
    target, pred = rng.integers(0, 4, (2, 30, 30)), rng.integers(0, 4, (2, 30, 30))
    target[0, :5] = 7
    whole = ConfusionMatrix(4, ignore_index=7).update(pred, target)
    first = ConfusionMatrix(4, ignore_index=7).update(pred[0], target[0])
    second = ConfusionMatrix(4, ignore_index=7).update(pred[1], target[1])
    added = first + second
    np.testing.assert_array_equal(added.matrix, whole.matrix)
    np.testing.assert_array_equal(first.matrix + second.matrix, whole.matrix)
    assert added is not first and first.total == 30 * 25  # `+` leaves its operands alone
    first += second
    np.testing.assert_array_equal(first.matrix, whole.matrix)
    again = ConfusionMatrix(4, ignore_index=7).merge(whole).merge(whole)
    np.testing.assert_array_equal(again.matrix, 2 * whole.matrix)
    with pytest.raises(ValueError, match="3 and 4 classes"):
        ConfusionMatrix(3).merge(whole)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_and_numpy_inputs_agree(device):
    rng = np.random.default_rng(4)
    target = rng.integers(0, 6, (3, 17, 23))
    target[:, 0] = 255
    pred = rng.integers(0, 6, target.shape)
    ref = ConfusionMatrix(6, 255).update(pred, target).matrix
    p_t, t_t = torch.from_numpy(pred).to(device), torch.from_numpy(target).to(device)
    cases = [
        (p_t, t_t),
        (p_t.to(torch.uint8), t_t.to(torch.int32)),
        (p_t, target),  # mixed: counted on the tensor's device
        (pred, t_t),
    ]
    for p, t in cases:
        np.testing.assert_array_equal(ConfusionMatrix(6, 255).update(p, t).matrix, ref)


def test_bool_maps_count_as_two_classes():
    pred = np.array([True, False, True])
    target = np.array([True, True, False])
    np.testing.assert_array_equal(ConfusionMatrix(2).update(pred, target).matrix, [[0, 1], [1, 1]])
    np.testing.assert_array_equal(
        ConfusionMatrix(2).update(torch.from_numpy(pred), torch.from_numpy(target)).matrix, [[0, 1], [1, 1]]
    )


@pytest.mark.parametrize("to_input", [np.asarray, torch.as_tensor])
def test_bad_labels_are_refused_and_ignored_pixels_are_not_checked(to_input):
    cm = ConfusionMatrix(2, ignore_index=255)
    with pytest.raises(ValueError, match="1 predicted labels lie outside"):
        cm.update(to_input([0, 2]), to_input([0, 1]))
    with pytest.raises(ValueError, match="predicted labels lie outside"):
        cm.update(to_input([-1, 0]), to_input([0, 1]))
    with pytest.raises(ValueError, match="target labels lie outside .* ignore_index=255"):
        cm.update(to_input([0, 1]), to_input([0, 254]))
    with pytest.raises(ValueError, match="differs from target shape"):
        cm.update(to_input([0, 1]), to_input([[0, 1]]))
    with pytest.raises(ValueError, match="integer class labels"):
        cm.update(to_input([0.0, 1.0]), to_input([0, 1]))
    assert cm.total == 0  # nothing was counted by the refused updates
    cm.update(to_input([0, 255]), to_input([0, 255]))  # a copy of the target as prediction is fine
    np.testing.assert_array_equal(cm.matrix, [[1, 0], [0, 0]])


def test_summary_is_plain_floats_keyed_by_class_name():
    cm = ConfusionMatrix(2).update(np.array([0, 1, 1]), np.array([0, 1, 0]))
    s = cm.summary(["membrane", "cell"])
    assert set(s) == {"pixel_accuracy", "mean_class_accuracy", "mean_iou", "fw_iou", "iou", "dice"}
    assert s["iou"] == {"membrane": 0.5, "cell": 0.5}
    assert s["dice"] == pytest.approx({"membrane": 2 / 3, "cell": 2 / 3})
    assert all(type(v) is float for v in (s["pixel_accuracy"], s["mean_iou"], *s["iou"].values()))
    assert list(cm.summary()["iou"]) == ["0", "1"]
    with pytest.raises(ValueError, match="3 class names for 2 classes"):
        cm.summary(["a", "b", "c"])


def test_all_reduce_without_a_process_group_is_a_no_op():
    cm = ConfusionMatrix(2).update(np.array([0, 1]), np.array([1, 1]))
    assert cm.all_reduce() is cm
    np.testing.assert_array_equal(cm.matrix, [[0, 0], [1, 1]])


def _all_reduce_worker(rank: int, init_file: str, out: multiprocessing.Queue) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        cm = ConfusionMatrix(3)
        cm.update(np.full(4, rank), np.arange(4) % 3)  # rank 0 predicts 0s, rank 1 predicts 1s
        cm.all_reduce()
        out.put((rank, cm.matrix.tolist()))
    finally:
        dist.destroy_process_group()


def test_all_reduce_sums_over_two_gloo_processes(tmp_path):
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    results = context.Queue()
    init_file = str(tmp_path / "rendezvous")
    workers = [context.Process(target=_all_reduce_worker, args=(r, init_file, results)) for r in range(2)]
    for w in workers:
        w.start()
    got = dict(results.get(timeout=60) for _ in workers)
    for w in workers:
        w.join(timeout=60)
    # targets 0,1,2,0 on both ranks; rank 0 predicts 0, rank 1 predicts 1
    expected = [[2, 2, 0], [1, 1, 0], [1, 1, 0]]
    assert got == {0: expected, 1: expected}
    assert all(w.exitcode == 0 for w in workers)
