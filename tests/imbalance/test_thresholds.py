"""Threshold and bias tuning, prior correction: hand-computed optima and independent references."""

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_curve

from segscope.errors import UserError
from segscope.imbalance import apply_bias, prior_correction_bias, tune_binary_threshold, tune_class_bias
from segscope.metrics import ConfusionMatrix


def test_binary_threshold_finds_the_hand_known_optimum():
    # predict fg where p >= t. By hand, F1 per cut: >=.9: 2/4, >=.8: 4/5, >=.6: 4/6, >=.35: 4/7,
    # >=.3: 6/8, >=.1: 6/9. Best: keep {.8, .9} -> t midway between .6 and .8; IoU there 2/3.
    prob = np.array([[0.1, 0.3, 0.35], [0.6, 0.8, 0.9]])
    target = np.array([[0, 1, 0], [0, 1, 1]])
    t, f1 = tune_binary_threshold(prob, target, metric="f1")
    assert t == pytest.approx(0.7) and f1 == pytest.approx(0.8)
    assert tune_binary_threshold(prob, target, metric="dice") == (t, f1)
    t_iou, iou = tune_binary_threshold(prob, target, metric="iou")
    assert t_iou == pytest.approx(0.7) and iou == pytest.approx(2 / 3)
    # an ignored pixel (255) with a high score changes nothing; counted as foreground it would
    p2, y2 = np.append(prob, 0.95), np.append(target, 255)
    assert tune_binary_threshold(p2, y2, ignore_index=255) == pytest.approx((0.7, 0.8))
    assert tune_binary_threshold(p2, y2)[1] == pytest.approx(6 / 7)  # {.8, .9, .95} of 4 positives
    # torch in, same answer
    assert tune_binary_threshold(torch.tensor(prob), torch.tensor(target)) == pytest.approx((0.7, 0.8))


def test_pooled_sweep_equals_the_best_f1_of_scikit_learns_curve():
    rng = np.random.default_rng(0)
    y = rng.random(3000) < 0.1
    p = np.clip(0.3 * y + rng.normal(0.3, 0.15, 3000), 0, 1).round(3)  # ties included
    t, f1 = tune_binary_threshold(p, y.astype(int))
    precision, recall, _ = precision_recall_curve(y, p)
    with np.errstate(invalid="ignore"):
        best = np.nanmax(2 * precision * recall / (precision + recall))
    assert f1 == pytest.approx(best)
    pred = p >= t
    tp, fp, fn = (pred & y).sum(), (pred & ~y).sum(), (~pred & y).sum()
    assert f1 == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_image_averaged_threshold_equals_a_brute_force_search():
    rng = np.random.default_rng(1)
    probs = rng.random((3, 8, 8))
    target = (probs + rng.normal(0, 0.3, probs.shape) > 0.8).astype(int)
    t, score = tune_binary_threshold(probs, target, metric="iou", average="image", bins=64)

    def mean_iou_at(thr):
        ious = [((p >= thr) & (y == 1)).sum() / ((p >= thr) | (y == 1)).sum() for p, y in zip(probs, target)]
        return np.mean(ious)

    grid = np.unique(np.quantile(probs, np.linspace(0, 1, 65)))
    assert score == pytest.approx(max(mean_iou_at(g) for g in grid)) and score == pytest.approx(
        mean_iou_at(t)
    )
    with pytest.raises(UserError, match="no foreground pixel"):
        tune_binary_threshold(probs, np.zeros_like(target))
    with pytest.raises(UserError, match="unknown threshold metric 'auc'"):
        tune_binary_threshold(probs, target, metric="auc")


def test_prior_correction_equals_minus_log_prior_and_recovers_the_balanced_posterior():
    counts = np.array([80, 15, 5])
    bias = prior_correction_bias(counts)
    np.testing.assert_allclose(bias, -np.log([0.8, 0.15, 0.05]) + np.log(1 / 3))
    np.testing.assert_allclose(
        prior_correction_bias(counts, [0.5, 0.25, 0.25], tau=0.5),
        0.5 * (np.log([0.5, 0.25, 0.25]) - np.log([0.8, 0.15, 0.05])),
    )
    # Bayes: with likelihoods L, the training posterior is softmax(log L + log pi); adding the bias
    # gives softmax(log L), the posterior under the uniform prior
    rng = np.random.default_rng(0)
    log_lik = rng.normal(size=(3, 4, 5))
    train_logits = log_lik + np.log(counts / counts.sum())[:, None, None]
    corrected = apply_bias(train_logits, bias)

    def softmax(z):
        e = np.exp(z - z.max(0))
        return e / e.sum(0)

    np.testing.assert_allclose(softmax(corrected), softmax(log_lik), atol=1e-12)
    with pytest.raises(UserError, match="class 2 has zero frequency"):
        prior_correction_bias([3, 1, 0])
    with pytest.raises(UserError, match="target_prior has 2 classes"):
        prior_correction_bias(counts, [0.5, 0.5])


def test_apply_bias_numpy_and_torch():
    logits = np.zeros((2, 3, 4, 4), np.float32)
    out = apply_bias(logits, [1.0, 2.0, 3.0])
    assert out.dtype == np.float32 and out.shape == logits.shape
    np.testing.assert_array_equal(out[1, :, 2, 3], [1, 2, 3])
    t = apply_bias(torch.zeros(3, 4, 4, dtype=torch.float64), np.array([1.0, 2.0, 3.0]))
    assert t.dtype == torch.float64 and torch.equal(t[:, 0, 0], torch.tensor([1.0, 2.0, 3.0], dtype=t.dtype))
    with pytest.raises(ValueError, match="bias has 2 entries for 3 classes"):
        apply_bias(logits, [1.0, 2.0])


def _under_predicted_rare_class(seed=0):
    """3 classes; class 2 (5 % of pixels) has its logit pushed down by 2, so argmax misses most of it.
    (Adding the 2 back does not maximise mean IoU: the tuned biases beat it.)"""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=(4, 32, 32), p=[0.7, 0.25, 0.05])
    logits = 2.0 * np.eye(3)[y].transpose(0, 3, 1, 2) + rng.normal(0, 1.0, (4, 3, 32, 32))
    logits[:, 2] -= 2.0
    return logits, y


def _miou(logits, y):
    return ConfusionMatrix(3).update(logits.argmax(1), y).mean_iou()


def test_bias_tuning_raises_validation_mean_iou_of_an_under_predicted_class():
    logits, y = _under_predicted_rare_class()
    bias, score = tune_class_bias(logits, y)
    before, after = _miou(logits, y), _miou(apply_bias(logits, bias), y)
    assert score == pytest.approx(after)  # the returned score is the real argmax mean IoU
    assert after > before + 0.05 and after > _miou(apply_bias(logits, [0, 0, 2.0]), y) + 0.05
    iou_before = ConfusionMatrix(3).update(logits.argmax(1), y).iou()
    iou_after = ConfusionMatrix(3).update(apply_bias(logits, bias).argmax(1), y).iou()
    assert iou_after[2] > iou_before[2] + 0.1  # the rare class gains most (0.36 -> 0.54)
    assert bias[2] == bias.max() and bias.mean() == pytest.approx(0)
    # it generalises: the same biases help on fresh pixels of the same distribution
    test_logits, test_y = _under_predicted_rare_class(seed=1)
    assert _miou(apply_bias(test_logits, bias), test_y) > _miou(test_logits, test_y) + 0.05


def test_bias_tuning_inputs_ignore_and_bounded_work():
    logits, y = _under_predicted_rare_class()
    y_ign = y.copy()
    y_ign[:, :4] = 255
    a = tune_class_bias(torch.tensor(logits), torch.tensor(y_ign), ignore_index=255, rounds=1)
    b = tune_class_bias(list(logits), list(y_ign), ignore_index=255, rounds=1)
    np.testing.assert_allclose(a[0], b[0])
    small = tune_class_bias(logits, y, max_pixels=500, grid=[-1, 1])
    assert small[1] > 0 and set(np.round(np.diff(np.sort(small[0])), 6)) <= {0, 1, 2, 3, 4}
    with pytest.raises(UserError, match="target label 3 is outside the 3 classes"):
        tune_class_bias(logits, np.full(y.shape, 3))
