"""Interactive prompts (a box, foreground / background points) for grabcut, graphcut and random_walker:
the seed maps by hand, the parsers, the refusals, and segmentations of synthetic images whose answer is
known."""

import numpy as np
import pytest

from segscope.classical.graph_cut import seeded_graph_cut
from segscope.classical.segmenter import check_prompt_kinds
from segscope.errors import UserError
from segscope.factory import create_segmenter
from segscope.prompts import Prompt, parse_box, parse_points

H, W = 40, 90
YY, XX = np.mgrid[:H, :W]
# two bright discs on a dark background: the left one (row 20, col 22), the right one (row 20, col 66)
LEFT = (YY - 20) ** 2 + (XX - 22) ** 2 < 11**2
RIGHT = (YY - 20) ** 2 + (XX - 66) ** 2 < 11**2
# the box (x0, y0, x1, y1) around the right disc only: columns 50..81, rows 4..35; read as
# (row0, col0, row1, col1) it would not fit the 40-row image
RIGHT_BOX = (50, 4, 82, 36)


def two_discs(noise: float = 5.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grey = np.where(LEFT | RIGHT, 200, 40) + rng.normal(0, noise, LEFT.shape)
    return np.repeat(grey.clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


# -- the prompt type -------------------------------------------------------------------------------
def test_seed_map_by_hand():
    # radius 0: exactly the clicked pixels; x is the column, y the row
    seeds = Prompt(fg_points=((1, 2),), bg_points=((4, 0),), radius=0).seed_map((3, 5))
    assert seeds.dtype == np.int32
    assert seeds.tolist() == [
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
        [0, 2, 0, 0, 0],
    ]
    # radius 1: a plus-shaped disc; the background point is drawn last and wins where they overlap
    seeds = Prompt(fg_points=((2, 2),), bg_points=((3, 2),), radius=1).seed_map((5, 6))
    assert seeds.tolist() == [
        [0, 0, 0, 0, 0, 0],
        [0, 0, 2, 1, 0, 0],
        [0, 2, 1, 1, 1, 0],
        [0, 0, 2, 1, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
    # a box: background outside it (x1, y1 exclusive), unless box_background=False
    prompt = Prompt(box=(1, 1, 4, 3), fg_points=((2, 1),), radius=0)
    assert prompt.seed_map((4, 5)).tolist() == [
        [1, 1, 1, 1, 1],
        [1, 0, 2, 0, 1],
        [1, 0, 0, 0, 1],
        [1, 1, 1, 1, 1],
    ]
    assert prompt.seed_map((4, 5), box_background=False).tolist() == [
        [0, 0, 0, 0, 0],
        [0, 0, 2, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]


def test_prompt_kinds_and_check():
    assert Prompt().kinds() == set() and not Prompt()
    assert Prompt(box=(0, 0, 2, 2)).kinds() == {"box"}
    assert Prompt(bg_points=((0, 0),)).kinds() == {"points"}
    assert Prompt(box=(0, 0, 2, 2), fg_points=((1, 1),)).kinds() == {"box", "points"}
    Prompt(box=(0, 0, 60, 40), fg_points=((59, 39),)).check((40, 60, 3))  # the largest that fits
    with pytest.raises(UserError, match=r"grabcut: fg point \(60, 5\) is outside the 60x40 image"):
        Prompt(fg_points=((60, 5),)).check((40, 60, 3), "grabcut")
    with pytest.raises(UserError, match=r"bg point \(3, -1\)"):
        Prompt(bg_points=((3, -1),)).check((40, 60))
    with pytest.raises(UserError, match=r"box \(0, 0, 61, 40\)"):
        Prompt(box=(0, 0, 61, 40)).check((40, 60))
    with pytest.raises(UserError, match="box"):
        Prompt(box=(5, 5, 5, 9)).check((40, 60))  # empty
    with pytest.raises(UserError, match="finite"):
        Prompt(box=(0, 0, float("inf"), 3))
    with pytest.raises(UserError, match="seed radius"):
        Prompt(radius=-1)


def test_parse_box_and_points():
    assert parse_box("1,2,3,4") == (1, 2, 3, 4)
    assert parse_box(" 1.6, 2 ,30,40") == (2, 2, 30, 40)
    for bad in ("1,2,3", "1,2,3,4,5", "a,b,c,d", "", "1;2;3;4"):
        with pytest.raises(UserError, match="--box"):
            parse_box(bad)
    expected = ((10, 20), (30, 40))
    assert parse_points("10,20;30,40") == expected
    assert parse_points("10,20 30,40") == expected
    assert parse_points("10, 20; 30, 40;") == expected
    assert parse_points("7.4,8.6") == ((7, 9),)
    for bad in ("10", "10,20,30", "x,y", ";", "10,20;30"):
        with pytest.raises(UserError, match="--bg-points"):
            parse_points(bad, "--bg-points")


def test_prompt_round_trips_through_its_json_form():
    prompt = Prompt(box=(1, 2, 30, 40), fg_points=((3, 4), (5, 6)), bg_points=((0, 0),), radius=2)
    assert Prompt.from_dict(prompt.to_dict()) == prompt
    assert Prompt.from_dict({}) is None and Prompt.from_dict({"fg_points": []}) is None
    with pytest.raises(UserError, match="unknown keys"):
        Prompt.from_dict({"boxes": [1, 2, 3, 4]})


# -- which methods take which prompt ---------------------------------------------------------------
def test_methods_declare_their_prompts_and_refuse_others():
    assert create_segmenter("otsu").prompts == ()
    for name in ("grabcut", "graphcut", "random_walker"):
        assert create_segmenter(name).prompts == ("box", "points")
    image = two_discs()
    with pytest.raises(UserError, match="^otsu takes no prompt$"):
        create_segmenter("otsu").predict(image, prompt=Prompt(box=RIGHT_BOX))
    with pytest.raises(UserError, match="^watershed takes no prompt$"):
        create_segmenter("watershed").predict(image, prompt=Prompt(fg_points=((3, 3),)))
    with pytest.raises(UserError, match="^walker takes point prompts, not a box$"):
        check_prompt_kinds("walker", ("points",), Prompt(box=(0, 0, 2, 2), fg_points=((1, 1),)))
    check_prompt_kinds("otsu", (), None)
    check_prompt_kinds("otsu", (), Prompt())
    # an empty prompt is no prompt
    otsu = create_segmenter("otsu")
    assert np.array_equal(otsu.predict(image, prompt=Prompt()), otsu.predict(image))
    # the prompted hooks exist only where a method implements them
    with pytest.raises(TypeError, match="segment_mask_prompted"):
        otsu.segment_mask_prompted(image, {}, None, Prompt(box=RIGHT_BOX))


def test_a_point_outside_the_image_is_refused_naming_it():
    for name in ("grabcut", "graphcut", "random_walker"):
        with pytest.raises(UserError, match=rf"^{name}: fg point \(90, 3\) is outside the 90x40 image$"):
            create_segmenter(name).predict(two_discs(), prompt=Prompt(fg_points=((90, 3),)))
        with pytest.raises(UserError, match=rf"^{name}: box .* is not inside the 90x40 image$"):
            create_segmenter(name).predict(two_discs(), prompt=Prompt(box=(4, 50, 36, 82)))  # (y, x) order


# -- GrabCut ---------------------------------------------------------------------------------------
def test_grabcut_box_picks_the_disc_inside_it():
    image = two_discs()
    for options in ({}, {"invert": True}):  # the tuned polarity is ignored: the box says where
        mask = create_segmenter("grabcut", **options).predict(image, prompt=Prompt(box=RIGHT_BOX)) == 1
        assert iou(mask, RIGHT) > 0.8
        assert (mask & LEFT).sum() < 0.05 * LEFT.sum()
        x0, y0, x1, y1 = RIGHT_BOX
        inside = np.zeros_like(mask)
        inside[y0:y1, x0:x1] = True
        assert not (mask & ~inside).any()
    # without a prompt invert=True does negate the mask (so the check above means something)
    plain = create_segmenter("grabcut", invert=True).predict(image) == 1
    assert plain[0, 0] and not plain[20, 66]


def test_grabcut_points_are_hard_labels():
    image = two_discs()
    seg = create_segmenter("grabcut")
    # a foreground point on the left disc only (the margin box bounds the object): both equal discs
    both = seg.predict(image, prompt=Prompt(fg_points=((22, 20),), radius=2)) == 1
    assert iou(both, LEFT | RIGHT) > 0.8
    # a background point on the right disc takes it out
    prompt = Prompt(fg_points=((22, 20),), bg_points=((66, 20),), radius=2)
    seeds = prompt.seed_map(image.shape, box_background=False)
    mask = seg.predict(image, prompt=prompt) == 1
    assert iou(mask, LEFT) > 0.8 and (mask & RIGHT).sum() < 0.05 * RIGHT.sum()
    assert mask[seeds == 2].all() and not mask[seeds == 1].any()
    # a foreground stroke on the dark background inside the box stays foreground
    stroke = Prompt(box=RIGHT_BOX, fg_points=((55, 6), (56, 6), (57, 6)), radius=1)
    seeds = stroke.seed_map(image.shape, box_background=False)
    mask = seg.predict(image, prompt=stroke) == 1
    assert mask[seeds == 2].all() and not (image[seeds == 2] > 100).any()
    assert iou(mask, RIGHT) > 0.8


# -- graph cut (Boykov & Jolly) --------------------------------------------------------------------
def square_image():
    square = np.zeros((H, W), bool)
    square[8:30, 50:80] = True
    return np.where(square, 200, 50).astype(np.uint8)[..., None], square


def test_graphcut_two_colour_image_gives_the_region():
    image, square = square_image()
    prompt = Prompt(fg_points=((60, 15),), bg_points=((10, 10),))
    assert np.array_equal(create_segmenter("graphcut").predict(image, prompt=prompt) == 1, square)
    # a box alone: outside is background, the interior models the object
    box = create_segmenter("graphcut").predict(image, prompt=Prompt(box=(40, 2, 88, 36))) == 1
    assert np.array_equal(box, square)
    # the box around one of two equal discs
    mask = create_segmenter("graphcut").predict(two_discs(), prompt=Prompt(box=RIGHT_BOX)) == 1
    assert iou(mask, RIGHT) > 0.9 and not (mask & LEFT).any()


def test_graphcut_seeds_keep_their_label_against_the_colour_model():
    image, square = square_image()
    # strokes: foreground across the square, background across the dark part; then dots that the colour
    # models disagree with: a foreground one on the dark background, a background one in the square
    fg_stroke = tuple((x, 15) for x in range(55, 76))
    bg_stroke = tuple((x, 36) for x in range(5, 40))
    prompt = Prompt(fg_points=(*fg_stroke, (10, 30)), bg_points=(*bg_stroke, (75, 25)), radius=1)
    seeds = prompt.seed_map(image.shape)
    for smoothness in (0.3, 1.0, 10.0):
        mask = create_segmenter("graphcut", smoothness=smoothness).predict(image, prompt=prompt) == 1
        assert mask[seeds == 2].all() and not mask[seeds == 1].any()
    mask = create_segmenter("graphcut", smoothness=1.0).predict(image, prompt=prompt) == 1
    assert np.array_equal(mask, (square | (seeds == 2)) & (seeds != 1))


def test_seeded_graph_cut_function_and_its_errors():
    image, square = square_image()
    fg, bg = np.zeros(square.shape, bool), np.zeros(square.shape, bool)
    fg[15, 60], bg[0, 0] = True, True
    assert np.array_equal(seeded_graph_cut(image, fg, bg, bins=16), square)
    with pytest.raises(ValueError, match="object and background seeds"):
        seeded_graph_cut(image, fg, np.zeros_like(bg))
    with pytest.raises(UserError, match="^graphcut needs object and background seeds"):
        create_segmenter("graphcut").predict(image, prompt=Prompt(fg_points=((60, 15),)))
    with pytest.raises(UserError, match="^graphcut needs object and background seeds"):
        create_segmenter("graphcut").predict(image, prompt=Prompt(box=(0, 0, W, H)))


# -- random walker ---------------------------------------------------------------------------------
def two_regions():
    """A piecewise-constant image: region A (a staircase on the left with a round bump) and region B
    (the rest), each one connected piece."""
    region = (XX < 25 + YY // 2) | ((YY - 20) ** 2 + (XX - 40) ** 2 < 64)
    return np.where(region, 70, 170).astype(np.uint8)[..., None], region


def test_random_walker_gives_exactly_the_region_of_the_foreground_point():
    from scipy import ndimage

    image, region = two_regions()
    assert ndimage.label(region)[1] == 1 and ndimage.label(~region)[1] == 1
    seg = create_segmenter("random_walker")
    mask = seg.predict(image, prompt=Prompt(fg_points=((5, 20),), bg_points=((85, 20),))) == 1
    assert np.array_equal(mask, region)
    mask = seg.predict(image, prompt=Prompt(fg_points=((85, 20),), bg_points=((5, 20),))) == 1
    assert np.array_equal(mask, ~region)


def test_random_walker_border_background_and_errors():
    image, square = square_image()
    # only a foreground point: the image border is the background seed
    mask = create_segmenter("random_walker").predict(image, prompt=Prompt(fg_points=((65, 20),))) == 1
    assert np.array_equal(mask, square)
    # a box: outside it is background, a foreground point is still needed
    prompt = Prompt(box=(45, 4, 85, 34), fg_points=((65, 20),))
    assert np.array_equal(create_segmenter("random_walker").predict(image, prompt=prompt) == 1, square)
    with pytest.raises(UserError, match="^random_walker needs at least one foreground point"):
        create_segmenter("random_walker").predict(image, prompt=Prompt(box=(45, 4, 85, 34)))
    with pytest.raises(UserError, match="^random_walker needs at least one foreground point"):
        create_segmenter("random_walker").predict(image, prompt=Prompt(bg_points=((5, 5),)))


def test_postprocessing_still_applies_to_prompted_predictions():
    image, square = square_image()
    prompt = Prompt(fg_points=((60, 15), (10, 30)), bg_points=((10, 10),), radius=1)  # 5-pixel speck
    raw = create_segmenter("graphcut").predict(image, prompt=prompt) == 1
    assert raw[30, 10]
    cleaned = create_segmenter("graphcut", postprocess=[{"remove_small_objects": {"max_size": 20}}]).predict(
        image, prompt=prompt
    )
    assert np.array_equal(cleaned == 1, square)


def test_a_label_map_stage_passes_the_prompt_through_and_a_score_stage_refuses_it():
    from segscope.classical.stage import PostprocessStage
    from segscope.stages import StagedSegmenter

    image = two_discs()
    base = create_segmenter("grabcut", num_classes=2)
    staged = StagedSegmenter(base, [PostprocessStage(steps=["remove_small_holes"])])
    assert staged.prompts == ("box", "points")
    labels = staged.predict(image, prompt=Prompt(box=RIGHT_BOX))
    assert iou(labels == 1, RIGHT) > 0.8 and (labels[LEFT] == 1).mean() < 0.05
    crf = create_segmenter("grabcut", num_classes=2, crf=True)
    assert crf.prompts == ()
    with pytest.raises(UserError, match="takes no prompt through its score stages"):
        crf.predict(image, prompt=Prompt(box=RIGHT_BOX))
