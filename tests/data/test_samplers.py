"""Repeat-factor and class-balanced samplers: hand-computed weights and seeded sampling statistics."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

import segscope
from segscope.data.samplers import (
    build_sampler,
    class_balanced_weights,
    class_presence,
    expected_class_frequency,
    parse_sampler_spec,
    repeat_factors,
)
from segscope.data.torch_dataset import TorchSegmentationDataset
from segscope.errors import UserError

# 10 images, 3 classes + ignore (255): every image has class 0; class 1 in images 0-3 (f = 0.4);
# class 2 only in image 9 (f = 0.1), which is otherwise all ignore. Image 8 is all ignore.
CLASSES_IN = [{0, 1}, {0, 1}, {0, 1}, {0, 1}, {0}, {0}, {0}, {0}, set(), {2}]


def _masks():
    masks = []
    for present in CLASSES_IN:
        m = np.full((8, 8), 255, np.uint8)
        for j, c in enumerate(sorted(present)):
            m[j * 2 : j * 2 + 2] = c
        masks.append(m)
    return masks


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "rare"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "dataset.yaml").write_text("classes: [bg, common, rare]\nignore_index: 255\nmask_mode: index\n")
    for i, m in enumerate(_masks()):
        Image.fromarray(np.full((8, 8), 100, np.uint8)).save(root / "images" / f"{i:02d}.png")
        Image.fromarray(m).save(root / "masks" / f"{i:02d}.png")
    ds = segscope.open_dataset(root)
    assert ds.num_classes == 3 and ds.ignore_index == 255
    return ds


def test_class_presence_reads_masks_and_excludes_ignore(dataset):
    expected = np.array([[c in s for c in range(3)] for s in CLASSES_IN])
    np.testing.assert_array_equal(class_presence(dataset), expected)
    np.testing.assert_array_equal(class_presence(TorchSegmentationDataset(dataset, cache=False)), expected)
    np.testing.assert_array_equal(class_presence(_masks(), num_classes=3, ignore_index=255), expected)
    sub = torch.utils.data.Subset(TorchSegmentationDataset(dataset, cache=False), [9, 0])
    np.testing.assert_array_equal(class_presence(sub), expected[[9, 0]])


def test_repeat_factors_equal_hand_computed_values(dataset):
    # f = (0.8, 0.4, 0.1); t = 0.3: r_c = (1, 1, sqrt(3)); t = 0.8: r_c = (1, sqrt(2), sqrt(8))
    presence = class_presence(dataset)
    r = repeat_factors(presence, threshold=0.3)
    np.testing.assert_allclose(r, [1] * 9 + [math.sqrt(3)])
    r = repeat_factors(dataset, threshold=0.8)
    np.testing.assert_allclose(r, [math.sqrt(2)] * 4 + [1] * 5 + [math.sqrt(8)])
    # class balanced: mean of 1/f over present classes; the all-ignore image gets 1
    w = class_balanced_weights(presence)
    np.testing.assert_allclose(w, [(1 / 0.8 + 1 / 0.4) / 2] * 4 + [1 / 0.8] * 4 + [1.0, 10.0])
    with pytest.raises(UserError, match="threshold t must be > 0"):
        repeat_factors(presence, threshold=0)


def test_empirical_frequencies_match_repeat_factors(dataset):
    presence = class_presence(dataset)
    r = repeat_factors(presence, threshold=0.8)
    n = 40_000
    sampler = build_sampler("repeat_factor:t=0.8", dataset, num_samples=n, generator=torch.Generator())
    sampler.generator.manual_seed(0)
    draws = np.array(list(sampler))
    assert len(draws) == n
    freq = np.bincount(draws, minlength=len(r)) / n
    np.testing.assert_allclose(freq, r / r.sum(), atol=0.01)  # binomial sd ~ 0.0015
    # the rare class appears in sqrt(8) / sum(r) of the draws instead of 1/10
    drawn_rare = presence[draws, 2].mean()
    assert drawn_rare == pytest.approx(expected_class_frequency(presence, r)[2], abs=0.01)
    assert drawn_rare > 2 * expected_class_frequency(presence)[2]


def test_same_seed_same_sequence_and_rare_images_drawn_more_than_uniform(dataset):
    g = torch.Generator()
    sampler = build_sampler("repeat_factor:t=0.5", dataset, num_samples=2000, generator=g)
    g.manual_seed(7)
    a = list(sampler)
    g.manual_seed(7)
    b = list(sampler)
    g.manual_seed(8)
    c = list(sampler)
    assert a == b and a != c
    uniform = torch.utils.data.RandomSampler(range(10), replacement=True, num_samples=2000, generator=g)
    g.manual_seed(7)
    u = np.bincount(list(uniform), minlength=10)
    counts = np.bincount(a, minlength=10)
    assert counts[9] > 1.5 * u[9]  # the rare-class image: r = sqrt(5) vs 1
    assert counts[:4].mean() > counts[4:8].mean()  # class 1 (f = 0.4 < t) gets r = sqrt(1.25)


def test_build_sampler_specs(dataset):
    g = torch.Generator()
    assert build_sampler(None, dataset, num_samples=4, generator=g) is None
    assert build_sampler("uniform", dataset, num_samples=4, generator=g) is None
    s = build_sampler("class_balanced", dataset, generator=g)
    assert isinstance(s, torch.utils.data.WeightedRandomSampler) and len(s) == len(dataset)
    np.testing.assert_allclose(s.weights.numpy(), class_balanced_weights(class_presence(dataset)))
    assert parse_sampler_spec("repeat_factor") == ("repeat_factor", {})
    assert parse_sampler_spec("repeat-factor:threshold=0.25") == ("repeat_factor", {"t": 0.25})
    with pytest.raises(UserError, match="unknown sampler 'oversample'"):
        build_sampler("oversample", dataset, num_samples=4, generator=g)
    with pytest.raises(UserError, match="bad option 'x=1'"):
        parse_sampler_spec("repeat_factor:x=1")
    with pytest.raises(UserError, match="option t must be a number"):
        parse_sampler_spec("repeat_factor:t=high")
    with pytest.raises(UserError, match="options of class_balanced: none"):
        parse_sampler_spec("class_balanced:t=1")


def test_sampler_drives_a_dataloader_reproducibly(dataset):
    tds = TorchSegmentationDataset(dataset)
    g = torch.Generator()
    loader = torch.utils.data.DataLoader(
        tds, batch_size=4, sampler=build_sampler("repeat_factor", tds, num_samples=8, generator=g)
    )
    g.manual_seed(3)
    first = [y.clone() for _, y in loader]
    g.manual_seed(3)
    again = [y.clone() for _, y in loader]
    assert len(first) == 2 and all(torch.equal(a, b) for a, b in zip(first, again))
