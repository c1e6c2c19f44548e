"""The plain classical functions against independent references: hand-computed values on tiny fixtures,
brute force, analytic solutions and known behaviour on synthetic images (never the library call a
function wraps)."""

import numpy as np
import pytest
from scipy import ndimage

from segscope.classical import (
    alpha_expansion,
    binary_graph_cut,
    chan_vese_mask,
    felzenszwalb_superpixels,
    grabcut_mask,
    intensity_seeds,
    label_superpixels,
    morph_chan_vese_mask,
    morph_geodesic_mask,
    multiotsu_regions,
    otsu_mask,
    postprocess,
    preprocess,
    quickshift_superpixels,
    random_walker_mask,
    slic_superpixels,
    snake_mask,
    watershed_instances,
)
from segscope.classical.graph_cut import edge_weights
from segscope.classical.threshold import adaptive_mask


def square_image(size=40, lo=0.2, hi=0.7, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    truth = np.zeros((size, size), bool)
    truth[10:30, 10:30] = True
    return np.where(truth, hi, lo) + noise * rng.standard_normal((size, size)), truth


def disc(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


# -- thresholds ------------------------------------------------------------------------------------
def test_otsu_finds_the_bright_square_exactly_and_maximises_the_between_class_variance_by_hand():
    grey, truth = square_image()
    assert iou(otsu_mask(grey), truth) == 1.0
    # five 0s, two middle values, three 10s. Between-class variance w0 w1 (m0 - m1)^2 of the two splits:
    # middle 6: {0} | {6, 10}: .5 * .5 * 8.4^2 = 17.64 beats {0, 6} | {10}: .7 * .3 * (10 - 12/7)^2 = 14.42
    # middle 4: {0} | {4, 10}: .5 * .5 * 7.6^2 = 14.44 loses to {0, 4} | {10}: .7 * .3 * (10 - 8/7)^2 = 16.47
    six = np.array([[0.0] * 5 + [6.0] * 2 + [10.0] * 3])
    four = np.array([[0.0] * 5 + [4.0] * 2 + [10.0] * 3])
    np.testing.assert_array_equal(otsu_mask(six)[0], [0] * 5 + [1] * 5)
    np.testing.assert_array_equal(otsu_mask(four)[0], [0] * 7 + [1] * 3)


def test_multiotsu_bins_are_the_three_grey_levels():
    grey = np.concatenate([np.full((10, 30), 0.1), np.full((10, 30), 0.5), np.full((10, 30), 0.9)])
    grey = grey + 0.02 * np.random.default_rng(0).standard_normal(grey.shape)
    bins = multiotsu_regions(grey, classes=3)
    levels = np.repeat(np.repeat([0, 1, 2], 10)[:, None], 30, axis=1)
    np.testing.assert_array_equal(bins[:, 0], levels[:, 0])
    # the thresholds sit at histogram-bin centres, so the odd extreme pixel of a level may cross one
    assert (bins == levels).mean() > 0.99
    with pytest.raises(ValueError, match="classes must be between 2 and 5"):
        multiotsu_regions(grey, classes=9)


def test_adaptive_threshold_by_hand():
    # one bright pixel on black: it exceeds its local mean, its neighbours do not (their window holds it)
    # and the black pixels further away equal theirs
    grey = np.zeros((9, 9))
    grey[4, 4] = 1.0
    for method in ("gaussian", "mean"):
        assert np.argwhere(adaptive_mask(grey, block_size=3, method=method)).tolist() == [[4, 4]]
    # "mean": the bright pixel's threshold is 1 / block_size^2 - offset, i.e. 1/9 + 0.9 > 1 > 1/25 + 0.9
    assert not adaptive_mask(grey, block_size=3, offset=-0.9, method="mean").any()
    assert np.argwhere(adaptive_mask(grey, block_size=5, offset=-0.9, method="mean")).tolist() == [[4, 4]]
    with pytest.raises(ValueError, match="odd integer"):
        adaptive_mask(grey, block_size=10)


# -- watershed -------------------------------------------------------------------------------------
def test_watershed_splits_two_touching_discs_into_two_instances():
    discs = disc((40, 60), (20, 20), 14) | disc((40, 60), (20, 40), 14)
    instances, fg = watershed_instances(discs.astype(float), markers="distance", sigma=0, h=0.2)
    assert instances.max() == 2
    assert instances[20, 12] != instances[20, 48] and min(instances[20, 12], instances[20, 48]) > 0
    assert instances[20, 30] == 0  # the neck is cut by the watershed line
    # by symmetry the cut is the column x = 30: each instance is its own disc's half of the union
    xx = np.mgrid[:40, :60][1]
    assert iou(instances == instances[20, 12], discs & (xx < 30)) == 1.0
    assert iou(instances == instances[20, 48], discs & (xx > 30)) == 1.0
    np.testing.assert_array_equal(fg, instances > 0)


@pytest.mark.parametrize("markers", ["gradient", "intensity"])
def test_watershed_other_markers_find_two_separate_blobs(markers):
    blobs = (disc((40, 60), (20, 15), 8) | disc((40, 60), (20, 45), 8)).astype(float)
    instances, fg = watershed_instances(blobs, markers=markers, sigma=1.0, h=0.1)
    assert instances.max() == 2
    assert iou(fg, blobs > 0) > 0.8
    with pytest.raises(ValueError, match="markers must be one of"):
        watershed_instances(blobs, markers="peaks")


# -- active contours -------------------------------------------------------------------------------
def test_chan_vese_finds_the_square_and_calls_the_bright_phase_the_object():
    grey, truth = square_image(noise=0.02)
    assert iou(chan_vese_mask(grey, mu=0.25, max_num_iter=50), truth) > 0.95
    # inverted, the bright phase is the surround: that is what is returned
    assert iou(chan_vese_mask(1 - grey, mu=0.25, max_num_iter=50), ~truth) > 0.95


def test_morph_chan_vese_finds_the_square_and_calls_the_bright_phase_the_object():
    grey, truth = square_image(noise=0.02)
    assert iou(morph_chan_vese_mask(grey, num_iter=30), truth) > 0.95
    assert iou(morph_chan_vese_mask(1 - grey, num_iter=30), ~truth) > 0.95


def test_morph_geodesic_shrinks_from_a_box_onto_a_disc():
    truth = disc((60, 60), (30, 30), 15)
    grey = np.where(truth, 0.8, 0.2)
    ours = morph_geodesic_mask(grey, num_iter=150, sigma=2.0, balloon=-1.0, init="box")
    assert iou(ours, truth) > 0.9


def test_snake_from_a_circle_finds_the_disc():
    truth = disc((80, 80), (40, 40), 20)
    grey = np.where(truth, 1.0, 0.0)
    ours = snake_mask(grey, init="circle", radius=0.4, sigma=2.0, max_num_iter=300)
    assert iou(ours, truth) > 0.85
    with pytest.raises(ValueError, match="circle' or a 'box"):
        snake_mask(grey, init="star")


# -- superpixels -----------------------------------------------------------------------------------
def test_superpixels_keep_to_colour_edges_and_number_from_zero():
    # four flat colour quadrants (with a little noise): no superpixel may straddle two of them
    rng = np.random.default_rng(0)
    image = np.zeros((32, 40, 3), np.int64)
    image[:16, :20], image[:16, 20:] = (200, 30, 30), (30, 200, 30)
    image[16:, :20], image[16:, 20:] = (30, 30, 200), (220, 220, 40)
    image = np.clip(image + rng.integers(-10, 10, image.shape), 0, 255).astype(np.uint8)
    quadrant = (np.arange(32)[:, None] >= 16) * 2 + (np.arange(40)[None, :] >= 20)
    for sp in (
        slic_superpixels(image, n_segments=20, compactness=10, sigma=0),
        felzenszwalb_superpixels(image, scale=50, sigma=0.5, min_size=10),
        quickshift_superpixels(image, kernel_size=3, max_dist=6, ratio=0.5),
    ):
        assert sp.dtype == np.int64 and sp.shape == (32, 40)
        ids = np.unique(sp)
        np.testing.assert_array_equal(ids, np.arange(len(ids)))  # ids 0..n-1
        assert len(ids) >= 4 and all(len(np.unique(quadrant[sp == i])) == 1 for i in ids)
    # the grey image is treated as colour with equal channels
    np.testing.assert_array_equal(
        slic_superpixels(image[..., :1], n_segments=20),
        slic_superpixels(np.repeat(image[..., :1], 3, axis=2), n_segments=20),
    )


def test_label_superpixels_paints_each_superpixel():
    superpixels = np.array([[0, 0, 1], [2, 2, 1]])
    np.testing.assert_array_equal(label_superpixels(superpixels, np.array([5, 3, 7])), [[5, 5, 3], [7, 7, 3]])


# -- graph cuts ------------------------------------------------------------------------------------
def test_edge_weights_hand_computed():
    image = np.array([[0.0, 1.0], [0.0, 0.0]])
    w = edge_weights(image, connectivity=4)
    # squared differences: right (0,1): [1, 0]; down (1,0): [0, 1]; mean 0.5 -> beta = 1
    np.testing.assert_allclose(w[(0, 1)], [[np.exp(-1), 0], [1, 0]])
    np.testing.assert_allclose(w[(1, 0)], [[1, np.exp(-1)], [0, 0]])


def test_binary_graph_cut_without_smoothness_is_pixelwise_and_with_it_removes_a_speck():
    rng = np.random.default_rng(0)
    cost_fg, cost_bg = rng.random((12, 12)), rng.random((12, 12))
    image = np.zeros((12, 12))
    np.testing.assert_array_equal(binary_graph_cut(image, cost_fg, cost_bg, smoothness=0), cost_fg < cost_bg)
    cost_fg, cost_bg = np.ones((12, 12)), np.zeros((12, 12))
    cost_fg[6, 6], cost_bg[6, 6] = 0.0, 1.0  # one pixel prefers foreground by 1
    assert binary_graph_cut(image, cost_fg, cost_bg, smoothness=0)[6, 6]
    assert not binary_graph_cut(image, cost_fg, cost_bg, smoothness=1.0).any()  # cutting 8 edges costs more


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_binary_graph_cut_is_the_brute_force_minimum_of_its_energy(seed):
    # E(l) = sum_p cost_l(p) + smoothness * sum_{p~q, l_p != l_q} exp(-beta (I_p - I_q)^2), 4-neighbours,
    # beta = 1 / (2 mean (I_p - I_q)^2): minimised over all 2^12 labellings of a 3 x 4 image
    rng = np.random.default_rng(seed)
    image = rng.random((3, 4))
    cost_fg, cost_bg = rng.random((3, 4)), rng.random((3, 4))
    ours = binary_graph_cut(image, cost_fg, cost_bg, smoothness=0.7, connectivity=4)
    pairs = [((y, x), (y, x + 1)) for y in range(3) for x in range(3)]
    pairs += [((y, x), (y + 1, x)) for y in range(2) for x in range(4)]
    d2 = np.array([(image[p] - image[q]) ** 2 for p, q in pairs])
    weights = 0.7 * np.exp(-d2 / (2 * d2.mean()))

    def energy(fg):
        cut = sum(w for (p, q), w in zip(pairs, weights) if fg[p] != fg[q])
        return np.where(fg, cost_fg, cost_bg).sum() + cut

    labellings = [np.array([(code >> i) & 1 for i in range(12)], bool).reshape(3, 4) for code in range(4096)]
    energies = np.array([energy(fg) for fg in labellings])
    best = labellings[int(np.argmin(energies))]
    assert np.sort(energies)[1] > energies.min() + 1e-9  # a unique minimum
    np.testing.assert_array_equal(ours, best)


def test_alpha_expansion_with_two_labels_equals_the_exact_binary_cut():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (20, 24, 3)).astype(np.float64)
    unary = rng.integers(0, 300, (20, 24, 2)) / 100.0
    labels = alpha_expansion(image, unary, smoothness=0.8, connectivity=4)
    exact = binary_graph_cut(image, unary[..., 1], unary[..., 0], smoothness=0.8, connectivity=4)
    np.testing.assert_array_equal(labels, exact.astype(np.int64))


def test_alpha_expansion_smooths_three_noisy_classes():
    truth = np.zeros((30, 30), np.int64)
    truth[:, 10:20], truth[:, 20:] = 1, 2
    rng = np.random.default_rng(0)
    probs = np.full((30, 30, 3), 0.2)
    probs[np.arange(30)[:, None], np.arange(30)[None, :], truth] = 0.6
    noisy = rng.random((30, 30)) < 0.25
    probs[noisy] = rng.dirichlet([1, 1, 1], noisy.sum())
    image = np.zeros((30, 30))
    labels = alpha_expansion(image, -np.log(probs), smoothness=1.0)
    assert (labels == truth).mean() > 0.97 > (np.argmax(probs, axis=2) == truth).mean()


def test_grabcut_finds_a_box_object_and_nothing_outside_the_box():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 40, (60, 60, 3)).astype(np.uint8)
    image[20:40, 20:40] = rng.integers(200, 255, (20, 20, 3))
    truth = np.zeros((60, 60), bool)
    truth[20:40, 20:40] = True
    assert iou(grabcut_mask(image, box=(10, 10, 50, 50), iterations=3), truth) > 0.9
    # box (x0, y0, x1, y1), not square: outside it is sure background
    ours = grabcut_mask(image, box=(12, 15, 45, 50), iterations=3)
    assert iou(ours, truth) > 0.9
    assert not ours[:15].any() and not ours[50:].any() and not ours[:, :12].any() and not ours[:, 45:].any()


# -- random walker ---------------------------------------------------------------------------------
def test_intensity_seeds_by_hand():
    grey = np.arange(10.0)[None] / 9  # quantiles 0.2 -> 0.2 and 0.8 -> 0.8
    seeds = intensity_seeds(grey, low=0.2, high=0.8, sigma=0)
    np.testing.assert_array_equal(seeds[0], [1, 1, 0, 0, 0, 0, 0, 0, 2, 2])


def test_random_walker_is_the_harmonic_solution_on_a_chain():
    # background seeds in column 0, object seeds in column 9. On a horizontal ramp every horizontal edge
    # has the same weight and the vertical ones carry no flow: the object probability is c / 9, so
    # columns 5..9 are the object. A sharp step between columns 2 and 3 cuts the chain there instead.
    seeds = np.zeros((5, 10), np.int32)
    seeds[:, 0], seeds[:, 9] = 1, 2
    ramp = np.tile(np.arange(10) * 0.01, (5, 1))
    np.testing.assert_array_equal(random_walker_mask(ramp, seeds, beta=130)[0], [0] * 5 + [1] * 5)
    step = np.where(np.arange(10) >= 3, 1.0, 0.0)[None].repeat(5, 0)
    np.testing.assert_array_equal(random_walker_mask(step, seeds, beta=130), step > 0)
    # and on the noisy square, from quantile seeds, it finds the square
    grey, truth = square_image(noise=0.1)
    ours = random_walker_mask(grey, intensity_seeds(grey, low=0.3, high=0.9, sigma=1.0), beta=130)
    assert iou(ours, truth) > 0.9


# -- pre- and post-processing ----------------------------------------------------------------------
def test_preprocessing_steps_do_their_job_and_chain_in_order():
    rng = np.random.default_rng(0)
    # CLAHE stretches a low-contrast image (grey levels 100..140)
    dull = ndimage.gaussian_filter(rng.random((40, 48)), 3)
    dull = (100 + 40 * (dull - dull.min()) / np.ptp(dull)).astype(np.uint8)
    clahe = preprocess(dull, [{"clahe": {"clip_limit": 0.02}}])
    assert clahe.dtype == np.uint8 and clahe.shape == dull.shape and clahe.std() > 2 * dull.std()
    # the denoisers flatten noise on both sides of a step edge and keep the edge
    step = np.where(np.arange(48) >= 24, 200.0, 40.0)[None].repeat(40, 0)
    noisy = np.clip(step + rng.normal(0, 10, step.shape), 0, 255).astype(np.uint8)
    for name in ("bilateral", "nl_means"):
        out = preprocess(noisy, [name]).astype(float)
        for flat in (np.s_[:, 4:20], np.s_[:, 28:44]):
            assert out[flat].std() < 0.6 * noisy[flat].std()
        assert out[:, 25:].mean() - out[:, :23].mean() > 150
    chained = preprocess(noisy, ["nl_means", "bilateral"])
    np.testing.assert_array_equal(chained, preprocess(preprocess(noisy, ["nl_means"]), ["bilateral"]))
    assert not np.array_equal(chained, preprocess(preprocess(noisy, ["bilateral"]), ["nl_means"]))
    with pytest.raises(ValueError, match="unknown preprocess step 'sharpen'"):
        preprocess(noisy, ["sharpen"])


def test_background_subtraction_flattens_a_ramp():
    ramp = np.tile(np.linspace(0, 150, 64), (64, 1))
    image = ramp.copy()
    image[28:36, 28:36] += 100
    flat = preprocess(image.astype(np.uint8), [{"subtract_background": {"radius": 10}}])
    assert flat[30, 30] > 240 and abs(int(flat[5, 60]) - int(flat[5, 3])) < 40  # ramp of 150 gone, spot kept


def test_postprocess_binary_stages_by_hand():
    square = np.zeros((14, 14), bool)
    square[2:8, 2:8] = True
    # a one-pixel hole in the square and a two-pixel speck: removed / filled below 5 pixels
    mask = square.copy()
    mask[4, 4] = False
    mask[11, 10:12] = True
    steps = [{"remove_small_objects": {"max_size": 5}}, {"remove_small_holes": {"max_size": 5}}]
    np.testing.assert_array_equal(postprocess(mask.astype(np.int64), steps, foreground=1), square)
    # opening with the radius-1 disk (a 3x3 cross) drops a one-pixel-wide line and the square's 4 corners
    mask = square.copy()
    mask[11, 2:9] = True
    opened = square.copy()
    opened[[2, 2, 7, 7], [2, 7, 2, 7]] = False
    np.testing.assert_array_equal(postprocess(mask.astype(np.int64), ["opening"], foreground=1), opened)
    # the white top-hat is what an opening of radius 2 removes: the whole line, the square's corners only
    tophat = postprocess(mask.astype(np.int64), [{"white_tophat": {"radius": 2}}], foreground=1)
    assert tophat[11, 2:9].all() and not tophat[3:7, 3:7].any() and tophat[2, 2] and tophat.sum() < 7 + 16


def test_postprocess_multiclass_fills_removed_specks_from_neighbours():
    labels = np.zeros((10, 10), np.int64)
    labels[:, 5:] = 2
    labels[2, 2] = 1  # a one-pixel speck of class 1 inside class 0
    labels[7, 7] = 0  # and one of class 0 inside class 2
    cleaned = postprocess(labels, [{"remove_small_objects": {"max_size": 1}}])
    expected = np.zeros((10, 10), np.int64)
    expected[:, 5:] = 2
    np.testing.assert_array_equal(cleaned, expected)
    with pytest.raises(ValueError, match="binary masks only"):
        postprocess(labels, ["closing"])
