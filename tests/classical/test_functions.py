"""The plain classical functions: tiny exact fixtures and equality with direct library calls."""

import warnings

import cv2
import maxflow
import numpy as np
import pytest
from scipy import ndimage
from skimage import draw, exposure, filters, measure, morphology, restoration, segmentation

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
def test_otsu_finds_the_bright_square_exactly_and_equals_scikit_image():
    grey, truth = square_image()
    fg = otsu_mask(grey)
    np.testing.assert_array_equal(fg, grey > filters.threshold_otsu(grey))
    assert iou(fg, truth) == 1.0


def test_multiotsu_bins_equal_scikit_image_thresholds():
    grey = np.concatenate([np.full((10, 30), 0.1), np.full((10, 30), 0.5), np.full((10, 30), 0.9)])
    grey = grey + 0.02 * np.random.default_rng(0).standard_normal(grey.shape)
    bins = multiotsu_regions(grey, classes=3)
    np.testing.assert_array_equal(bins, np.digitize(grey, filters.threshold_multiotsu(grey, classes=3)))
    np.testing.assert_array_equal(bins[:, 0], np.repeat([0, 1, 2], 10))
    with pytest.raises(ValueError, match="classes must be between 2 and 5"):
        multiotsu_regions(grey, classes=9)


def test_adaptive_threshold_equals_scikit_image():
    grey = np.random.default_rng(1).random((30, 30))
    np.testing.assert_array_equal(
        adaptive_mask(grey, block_size=11, offset=0.01), grey > filters.threshold_local(grey, 11, offset=0.01)
    )
    with pytest.raises(ValueError, match="odd integer"):
        adaptive_mask(grey, block_size=10)


# -- watershed -------------------------------------------------------------------------------------
def test_watershed_splits_two_touching_discs_into_two_instances():
    discs = disc((40, 60), (20, 20), 14) | disc((40, 60), (20, 40), 14)
    instances, fg = watershed_instances(discs.astype(float), markers="distance", sigma=0, h=0.2)
    assert instances.max() == 2
    assert instances[20, 12] != instances[20, 48] and min(instances[20, 12], instances[20, 48]) > 0
    assert instances[20, 30] == 0  # the neck is cut by the watershed line
    # identical to calling scikit-image directly
    dist = ndimage.distance_transform_edt(discs)
    seeds = measure.label(morphology.h_minima(-dist, 0.2 * dist.max()).astype(bool) & discs)
    expected = segmentation.watershed(-dist, seeds, mask=discs, watershed_line=True)
    np.testing.assert_array_equal(instances, expected)
    np.testing.assert_array_equal(fg, expected > 0)


@pytest.mark.parametrize("markers", ["gradient", "intensity"])
def test_watershed_other_markers_find_two_separate_blobs(markers):
    blobs = (disc((40, 60), (20, 15), 8) | disc((40, 60), (20, 45), 8)).astype(float)
    instances, fg = watershed_instances(blobs, markers=markers, sigma=1.0, h=0.1)
    assert instances.max() == 2
    assert iou(fg, blobs > 0) > 0.8
    with pytest.raises(ValueError, match="markers must be one of"):
        watershed_instances(blobs, markers="peaks")


# -- active contours -------------------------------------------------------------------------------
def test_chan_vese_equals_scikit_image_and_calls_the_bright_phase_the_object():
    grey, truth = square_image(noise=0.02)
    ours = chan_vese_mask(grey, mu=0.25, max_num_iter=50)
    direct = segmentation.chan_vese(grey, mu=0.25, max_num_iter=50)
    np.testing.assert_array_equal(ours, direct if grey[direct].mean() > grey[~direct].mean() else ~direct)
    assert iou(ours, truth) > 0.95


def test_morph_chan_vese_equals_scikit_image():
    grey, truth = square_image(noise=0.02)
    direct = segmentation.morphological_chan_vese(
        grey, 30, init_level_set="checkerboard", smoothing=1
    ).astype(bool)
    ours = morph_chan_vese_mask(grey, num_iter=30)
    np.testing.assert_array_equal(ours, direct if grey[direct].mean() > grey[~direct].mean() else ~direct)
    assert iou(ours, truth) > 0.95


def test_morph_geodesic_shrinks_from_a_box_onto_a_disc():
    truth = disc((60, 60), (30, 30), 15)
    grey = np.where(truth, 0.8, 0.2)
    ours = morph_geodesic_mask(grey, num_iter=150, sigma=2.0, balloon=-1.0, init="box")
    edges = segmentation.inverse_gaussian_gradient(grey, alpha=100.0, sigma=2.0)
    start = np.zeros((60, 60), bool)
    start[3:57, 3:57] = True
    assert iou(ours, truth) > 0.9
    direct = segmentation.morphological_geodesic_active_contour(
        edges, 150, init_level_set=start, balloon=-1.0
    )
    assert iou(ours, direct.astype(bool)) > 0.95  # the start box differs by the rasterisation of its border


def test_snake_from_a_circle_equals_scikit_image_and_finds_the_disc():
    truth = disc((80, 80), (40, 40), 20)
    grey = np.where(truth, 1.0, 0.0)
    ours = snake_mask(grey, init="circle", radius=0.4, sigma=2.0, max_num_iter=300)
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    start = np.stack([39.5 + 32 * np.sin(t), 39.5 + 32 * np.cos(t)], axis=1)
    contour = segmentation.active_contour(
        filters.gaussian(grey, sigma=2.0), start, alpha=0.015, beta=10.0, gamma=0.001, max_num_iter=300
    )
    np.testing.assert_array_equal(ours, draw.polygon2mask(grey.shape, contour))
    assert iou(ours, truth) > 0.85
    with pytest.raises(ValueError, match="circle' or a 'box"):
        snake_mask(grey, init="star")


# -- superpixels -----------------------------------------------------------------------------------
def test_superpixels_equal_scikit_image_calls():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        slic_superpixels(image, n_segments=20, compactness=10, sigma=1),
        segmentation.slic(image, n_segments=20, compactness=10, sigma=1, start_label=0),
    )
    np.testing.assert_array_equal(
        felzenszwalb_superpixels(image, scale=50, sigma=0.5, min_size=10),
        segmentation.felzenszwalb(image, scale=50, sigma=0.5, min_size=10),
    )
    qs = quickshift_superpixels(image, kernel_size=3, max_dist=6, ratio=0.5)
    direct = segmentation.quickshift(image, kernel_size=3, max_dist=6, ratio=0.5)
    assert len(np.unique(qs)) == len(np.unique(direct)) and qs.max() == len(np.unique(direct)) - 1
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


def test_binary_graph_cut_equals_a_direct_pymaxflow_graph():
    rng = np.random.default_rng(3)
    image = rng.random((10, 11))
    cost_fg, cost_bg = rng.random((10, 11)), rng.random((10, 11))
    ours = binary_graph_cut(image, cost_fg, cost_bg, smoothness=0.7, connectivity=4)
    d2 = np.concatenate([np.diff(image, axis=1).ravel() ** 2, np.diff(image, axis=0).ravel() ** 2])
    beta = 1 / (2 * d2.mean())
    g = maxflow.Graph[float]()
    ids = g.add_nodes(image.size)
    idx = np.arange(image.size).reshape(image.shape)
    for a, b in [(idx[:, :-1], idx[:, 1:]), (idx[:-1, :], idx[1:, :])]:
        for p, q in zip(a.ravel(), b.ravel()):
            w = 0.7 * np.exp(-beta * (image.flat[p] - image.flat[q]) ** 2)
            g.add_edge(ids[p], ids[q], w, w)
    for p in range(image.size):
        g.add_tedge(ids[p], cost_fg.flat[p], cost_bg.flat[p])
    g.maxflow()
    direct = np.array([g.get_segment(ids[p]) == 1 for p in range(image.size)]).reshape(image.shape)
    np.testing.assert_array_equal(ours, direct)


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


def test_grabcut_equals_opencv_and_finds_a_box_object():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 40, (60, 60, 3)).astype(np.uint8)
    image[20:40, 20:40] = rng.integers(200, 255, (20, 20, 3))
    ours = grabcut_mask(image, box=(10, 10, 50, 50), iterations=3)
    mask = np.zeros((60, 60), np.uint8)
    cv2.grabCut(image, mask, (10, 10, 40, 40), np.zeros((1, 65)), np.zeros((1, 65)), 3, cv2.GC_INIT_WITH_RECT)
    np.testing.assert_array_equal(ours, (mask == 1) | (mask == 3))
    truth = np.zeros((60, 60), bool)
    truth[20:40, 20:40] = True
    assert iou(ours, truth) > 0.9


# -- random walker ---------------------------------------------------------------------------------
def test_random_walker_equals_scikit_image_from_quantile_seeds():
    grey, truth = square_image(noise=0.1)
    seeds = intensity_seeds(grey, low=0.3, high=0.9, sigma=1.0)
    smooth = filters.gaussian(grey, sigma=1.0)
    lo, hi = np.quantile(smooth, [0.3, 0.9])
    np.testing.assert_array_equal(seeds, np.where(smooth >= hi, 2, np.where(smooth <= lo, 1, 0)))
    ours = random_walker_mask(grey, seeds, beta=130)
    with warnings.catch_warnings():  # scikit-image's solver-tolerance warning, silenced in ours too
        warnings.simplefilter("ignore", UserWarning)
        direct = segmentation.random_walker(grey, seeds, beta=130, tol=1e-3) == 2
    np.testing.assert_array_equal(ours, direct)
    assert iou(ours, truth) > 0.9


# -- pre- and post-processing ----------------------------------------------------------------------
def test_preprocessing_steps_equal_library_calls_and_chain():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 48), dtype=np.uint8)
    clahe = exposure.equalize_adapthist(image, clip_limit=0.02)
    np.testing.assert_array_equal(
        preprocess(image, [{"clahe": {"clip_limit": 0.02}}]), np.round(clahe * 255).astype(np.uint8)
    )
    np.testing.assert_array_equal(preprocess(image, ["bilateral"]), cv2.bilateralFilter(image, 9, 50.0, 5.0))
    np.testing.assert_array_equal(
        preprocess(image, ["nl_means"]), cv2.fastNlMeansDenoising(image, None, 10.0, 7, 21)
    )
    chained = preprocess(image, ["nl_means", "bilateral"])
    np.testing.assert_array_equal(
        chained, cv2.bilateralFilter(cv2.fastNlMeansDenoising(image, None, 10.0, 7, 21), 9, 50.0, 5.0)
    )
    with pytest.raises(ValueError, match="unknown preprocess step 'sharpen'"):
        preprocess(image, ["sharpen"])


def test_background_subtraction_flattens_a_ramp():
    ramp = np.tile(np.linspace(0, 150, 64), (64, 1))
    image = ramp.copy()
    image[28:36, 28:36] += 100
    flat = preprocess(image.astype(np.uint8), [{"subtract_background": {"radius": 10}}])
    x = image.astype(np.uint8).astype(float)
    direct = x - restoration.rolling_ball(x, radius=10)
    np.testing.assert_array_equal(
        flat, np.round(255 * (direct - direct.min()) / np.ptp(direct)).astype(np.uint8)
    )
    assert flat[30, 30] > 240 and abs(int(flat[5, 60]) - int(flat[5, 3])) < 40  # ramp of 150 gone, spot kept


def test_postprocess_binary_stages_equal_scikit_image():
    rng = np.random.default_rng(0)
    mask = rng.random((30, 30)) > 0.6
    labels = mask.astype(np.int64)
    expected = morphology.remove_small_holes(
        morphology.remove_small_objects(morphology.opening(mask, morphology.disk(1)), max_size=5),
        max_size=5,
    )
    steps = ["opening", {"remove_small_objects": {"max_size": 5}}, {"remove_small_holes": {"max_size": 5}}]
    np.testing.assert_array_equal(postprocess(labels, steps, foreground=1), expected.astype(np.int64))
    tophat = postprocess(labels, [{"white_tophat": {"radius": 2}}], foreground=1)
    np.testing.assert_array_equal(tophat, (mask & ~morphology.opening(mask, morphology.disk(2))).astype(int))


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
