"""Minimum-expected-cost decisions and cost-matrix validation."""

import numpy as np
import pytest
import torch

from segscope.errors import UserError
from segscope.imbalance import expected_cost, load_cost_matrix, min_expected_cost_decision

# missing the rare class 2 costs 10; other mistakes cost 1 (C[true, pred])
COST = [[0, 1, 1], [1, 0, 1], [10, 10, 0]]


def test_min_expected_cost_matches_hand_computation():
    # one pixel with p = (0.6, 0.3, 0.1): E[cost | pred 0] = 0.3 + 1.0 = 1.3, pred 1: 0.6 + 1.0 = 1.6,
    # pred 2: 0.6 + 0.3 = 0.9 -> predict the rare class 2 although argmax says 0.
    # a second pixel with p = (0.9, 0.08, 0.02): 0.28, 1.1, 0.98 -> 0.
    probs = np.array([[0.6, 0.9], [0.3, 0.08], [0.1, 0.02]]).reshape(3, 1, 2)
    np.testing.assert_allclose(expected_cost(probs, COST)[:, 0, 0], [1.3, 1.6, 0.9])
    np.testing.assert_allclose(expected_cost(probs, COST)[:, 0, 1], [0.28, 1.1, 0.98])
    labels = min_expected_cost_decision(probs, COST)
    assert labels.dtype == np.int64 and labels.tolist() == [[2, 0]]
    t = min_expected_cost_decision(torch.tensor(probs[None], dtype=torch.float32), COST)
    assert t.shape == (1, 1, 2) and t.tolist() == [[[2, 0]]]


def test_zero_one_cost_is_the_argmax():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 6, 5))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    zero_one = 1 - np.eye(4)
    np.testing.assert_array_equal(min_expected_cost_decision(probs, zero_one), probs.argmax(1))
    t = torch.tensor(probs)
    assert torch.equal(min_expected_cost_decision(t, zero_one), t.argmax(1))
    with pytest.raises(ValueError, match=r"cost matrix of shape \(3, 3\) for 4 classes"):
        min_expected_cost_decision(probs, COST)


def test_load_cost_matrix_from_lists_strings_and_files(tmp_path):
    np.testing.assert_array_equal(load_cost_matrix(COST, 3), np.array(COST, float))
    assert load_cost_matrix("[[0, 1], [5, 0]]", 2).tolist() == [[0, 1], [5, 0]]
    (tmp_path / "c.json").write_text("[[0, 2], [3, 0]]")
    assert load_cost_matrix(tmp_path / "c.json", 2).tolist() == [[0, 2], [3, 0]]
    (tmp_path / "c.yaml").write_text("cost_matrix:\n  - [0, 1]\n  - [4, 0]\n")
    assert load_cost_matrix(str(tmp_path / "c.yaml"), 2).tolist() == [[0, 1], [4, 0]]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ([[0, 1], [1, 0]], r"shape \(2, 2\), expected \(3, 3\) for 3 classes"),
        ([[0, 1, 1], [1, 0, -2], [1, 1, 0]], r"entries must be >= 0, C\[1, 2\] = -2"),
        ([[0, 1, 1], [1, 0, float("nan")], [1, 1, 0]], "entries must be finite"),
        ([[0, 1], [1, 0, 1], [1, 1, 0]], "must be a nested list of numbers"),
        ([["a", 1, 1], [1, 0, 1], [1, 1, 0]], "must be a nested list of numbers"),
        ("[[0, 1], [1, 0]", "not valid JSON"),
        ("missing.json", "missing.json: cost matrix file not found"),
    ],
)
def test_cost_matrix_validation_errors_are_one_line(source, message):
    with pytest.raises(UserError, match=message) as info:
        load_cost_matrix(source, 3)
    assert "\n" not in str(info.value)


def test_cost_matrix_file_errors_name_the_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("cost_matrix: [[0, 1]\n")
    with pytest.raises(UserError, match=r"bad.yaml: cannot parse the cost matrix"):
        load_cost_matrix(tmp_path / "bad.yaml", 2)
    (tmp_path / "other.json").write_text('{"costs": [[0, 1], [1, 0]]}')
    with pytest.raises(UserError, match=r"other.json: expected a nested list or a mapping with key"):
        load_cost_matrix(tmp_path / "other.json", 2)
    (tmp_path / "neg.json").write_text("[[0, -1], [1, 0]]")
    with pytest.raises(UserError, match=r"neg.json: cost matrix entries must be >= 0"):
        load_cost_matrix(tmp_path / "neg.json", 2)
