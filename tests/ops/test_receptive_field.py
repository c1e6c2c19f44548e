"""Receptive field of dilated stacks: the formula equals autograd, gridding holes, a hand-computed map."""

from __future__ import annotations

import numpy as np
import pytest

from segscope.ops.receptive_field import (
    analytic_receptive_field,
    dilated_stack,
    empirical_receptive_field,
    support_picture,
)


@pytest.mark.parametrize(
    ("rates", "kernel"),
    [
        ((1, 2, 4), 3),
        ((1, 1, 1), 3),
        ((2, 2, 2), 3),
        ((1, 2, 5), 3),
        ((3,), 5),
        ((1, 3), 2),
        ((1, 2, 4, 8), 3),
    ],
)
@pytest.mark.parametrize("weights", ["ones", "random"])
def test_analytic_equals_autograd(rates, kernel, weights):
    fields = empirical_receptive_field(rates, kernel, weights=weights)
    assert [f.analytic for f in fields] == analytic_receptive_field(rates, kernel)
    assert [f.extent for f in fields] == [f.analytic for f in fields]
    assert [f.rate for f in fields] == list(rates)


def test_lecture_stack_1_2_4_sees_15_pixels():
    assert analytic_receptive_field([1, 2, 4], 3) == [3, 7, 15]
    last = empirical_receptive_field([1, 2, 4], 3)[-1]
    assert last.extent == 15 and last.touched == 15 * 15 and last.coverage == 1


def test_gridding_equal_rates_leave_holes_hdc_rates_do_not():
    equal = empirical_receptive_field([2, 2, 2], 3)[-1]
    assert equal.extent == 13 and equal.touched == 7 * 7  # only the even offsets
    assert equal.coverage == pytest.approx(49 / 169) and equal.coverage < 1
    hybrid = empirical_receptive_field([1, 2, 5], 3)[-1]
    assert hybrid.extent == 17 and hybrid.coverage == 1
    assert "." in support_picture(equal.gradient) and "." not in support_picture(hybrid.gradient)


def test_hand_computed_two_plain_3x3_layers():
    # two all-ones 3x3 convolutions: paths per axis = [1,1,1] * [1,1,1] = [1, 2, 3, 2, 1]
    grad = empirical_receptive_field([1, 1], 3, margin=1)[-1].gradient
    profile = np.array([0, 1, 2, 3, 2, 1, 0])
    np.testing.assert_array_equal(grad, np.outer(profile, profile))
    # one 3x3 kernel at rate 2: taps at offsets -2, 0, 2, i.e. 9 of the 25 pixels of a 5x5 field
    single = empirical_receptive_field([2], 3, margin=0)[-1]
    np.testing.assert_array_equal(single.gradient != 0, np.outer([1, 0, 1, 0, 1], [1, 0, 1, 0, 1]) == 1)
    assert single.coverage == pytest.approx(9 / 25)


def test_stack_layers_and_bad_arguments():
    stack = dilated_stack([1, 2], 3)
    assert [conv.dilation for conv in stack] == [(1, 1), (2, 2)] and stack[0].bias is None
    for bad in ([], [0, 1]):
        with pytest.raises(ValueError, match="rate"):
            analytic_receptive_field(bad)
    with pytest.raises(ValueError, match="weights"):
        dilated_stack([1], weights="zeros")
