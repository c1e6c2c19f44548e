"""The pixel triplet loss: hand-computed values and gradients, mining, sampling, the spec term, learning."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from segscope import losses as L
from segscope.errors import UserError
from segscope.losses.triplet import sample_pixels


def points(xy: list[tuple[float, float]], labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """2-D embeddings of a 1 x len(xy) image, ``(1, 2, 1, W)`` float64 requiring grad, and its target."""
    emb = torch.tensor(xy, dtype=torch.float64).T.reshape(1, 2, 1, -1).requires_grad_()
    return emb, torch.tensor(labels).reshape(1, 1, -1)


def loss(emb, target, **kw) -> torch.Tensor:
    return L.pixel_triplet_loss(emb, target, normalize=kw.pop("normalize", False), **kw)


# --- values by hand --------------------------------------------------------------------------------

# A 3-4-5 rectangle: p0 (0,0), p1 (3,0), p2 (0,4) of class 0, p3 (3,4) of class 1.
# Distances: d01 = 3, d02 = 4, d12 = 5, d03 = 5, d13 = 4, d23 = 3. Margin 1.
RECT = ([(0, 0), (3, 0), (0, 4), (3, 4)], [0, 0, 0, 1])


def test_batch_hard_by_hand():
    # a0: hardest positive max(3, 4) = 4, only negative 5: relu(4 - 5 + 1) = 0
    # a1: max(d10 = 3, d12 = 5) = 5, negative d13 = 4: relu(5 - 4 + 1) = 2
    # a2: max(d20 = 4, d21 = 5) = 5, negative d23 = 3: relu(5 - 3 + 1) = 3
    # a3: no positive, skipped -> mean over 3 anchors
    expected = (0 + 2 + 3) / 3
    assert loss(*points(*RECT), margin=1.0).item() == pytest.approx(expected, abs=1e-9)


def test_all_triplets_by_hand():
    # (a, p, n): (0,1,3) relu(3-5+1)=0  (0,2,3) relu(4-5+1)=0  (1,0,3) relu(3-4+1)=0
    #            (1,2,3) relu(5-4+1)=2  (2,0,3) relu(4-3+1)=2  (2,1,3) relu(5-3+1)=3
    expected = (0 + 0 + 0 + 2 + 2 + 3) / 6
    assert loss(*points(*RECT), margin=1.0, mining="all").item() == pytest.approx(expected, abs=1e-9)


def test_normalize_projects_on_the_unit_circle():
    # (2,0), (5,0) -> both (1,0); (0,7) -> (0,1). Anchor 0: d_ap = 0, d_an = sqrt(2); same for anchor 1.
    emb, target = points([(2, 0), (5, 0), (0, 7)], [0, 0, 1])
    expected = 0 - math.sqrt(2) + 2.0
    got = L.pixel_triplet_loss(emb, target, margin=2.0, normalize=True)
    assert got.item() == pytest.approx(expected, abs=1e-5)
    got.backward()
    assert torch.isfinite(emb.grad).all()  # zero distance between the positives: finite gradient


def test_all_mining_matches_brute_force_triple_loop():
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(2, 4, 3, 5, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 3, 5), generator=g)
    for normalize in (False, True):
        x = emb.permute(0, 2, 3, 1).reshape(-1, 4)
        x = x / x.norm(dim=1, keepdim=True) if normalize else x
        y = target.reshape(-1).tolist()
        terms = [
            max(0.0, (x[a] - x[p]).norm().item() - (x[a] - x[n]).norm().item() + 0.5)
            for a, p, n in itertools.product(range(len(y)), repeat=3)
            if p != a and y[p] == y[a] and y[n] != y[a]
        ]
        got = L.pixel_triplet_loss(emb, target, mining="all", normalize=normalize)
        assert got.item() == pytest.approx(sum(terms) / len(terms), abs=1e-9)


# --- gradients -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mining", ["batch_hard", "all"])
def test_gradient_of_one_active_triplet_by_hand(mining):
    # a = (0.3, 0.2), p = (-1, 0.1) of class 0; n = (1.5, -0.4) of class 1; margin 1.
    # Anchor a: |a-p| = 1.3038, |a-n| = 1.3416, active. Anchor p: |p-a| + 1 = 2.3038 < |p-n| = 2.5495,
    # inactive. n has no positive. So loss = (|a-p| - |a-n| + 1) / 2 (two anchors).
    a, p, n = (torch.tensor(v, dtype=torch.float64) for v in ([0.3, 0.2], [-1.0, 0.1], [1.5, -0.4]))
    emb, target = points([tuple(a.tolist()), tuple(p.tolist()), tuple(n.tolist())], [0, 0, 1])
    out = loss(emb, target, margin=1.0, mining=mining)
    ap, an = a - p, a - n
    assert out.item() == pytest.approx((ap.norm() - an.norm() + 1).item() / 2, abs=1e-9)
    out.backward()
    grad = emb.grad.reshape(2, 3).T
    torch.testing.assert_close(grad[0], (ap / ap.norm() - an / an.norm()) / 2)
    torch.testing.assert_close(grad[1], (-ap / ap.norm()) / 2)
    torch.testing.assert_close(grad[2], (an / an.norm()) / 2)


@pytest.mark.parametrize("mining", ["batch_hard", "all", "random"])
@pytest.mark.parametrize("normalize", [True, False])
def test_gradcheck(mining, normalize):
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(1, 3, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[0, 0, 1, 1], [1, 2, 2, 0], [0, 1, 2, 2]]).reshape(1, 3, 4)

    def f(e):
        gen = torch.Generator().manual_seed(0)  # the same random choices on every call
        return L.pixel_triplet_loss(e, target, mining=mining, normalize=normalize, margin=0.8, generator=gen)

    assert f(emb).item() > 0  # some triplets active, so the check is not vacuous
    assert torch.autograd.gradcheck(f, (emb,))


# --- mining ----------------------------------------------------------------------------------------

# On a line: class 0 at 0 and 1, class 1 at 1.5 and 10. d01 = 1, d02 = 1.5, d03 = 10, d12 = 0.5,
# d13 = 9, d23 = 8.5. Every anchor has one positive; its two negatives are a near and a far one.
LINE = ([(0, 0), (1, 0), (1.5, 0), (10, 0)], [0, 0, 1, 1])


def test_batch_hard_uses_the_hardest_negative():
    # a0: relu(1 - min(1.5, 10) + 1) = 0.5   a1: relu(1 - min(0.5, 9) + 1) = 1.5
    # a2: relu(8.5 - min(1.5, 0.5) + 1) = 9   a3: relu(8.5 - min(10, 9) + 1) = 0.5
    hardest = (0.5 + 1.5 + 9 + 0.5) / 4
    # with the far negative instead: relu(1-10+1)=0, relu(1-9+1)=0, relu(8.5-1.5+1)=8, relu(8.5-10+1)=0
    far = (0 + 0 + 8 + 0) / 4
    got = loss(*points(*LINE), margin=1.0).item()
    assert got == pytest.approx(hardest, abs=1e-9)
    assert got != pytest.approx(far)


def test_random_mining_draws_one_negative_per_anchor():
    negatives = {0: (1.5, 10), 1: (0.5, 9), 2: (1.5, 0.5), 3: (10, 9)}  # d(a, n) for each anchor's two
    positive = {0: 1, 1: 1, 2: 8.5, 3: 8.5}
    possible = {
        round(sum(max(0.0, positive[a] - choice[a] + 1) for a in range(4)) / 4, 9)
        for choice in itertools.product(*negatives.values())
    }
    seen = set()
    for seed in range(20):
        got = loss(*points(*LINE), margin=1.0, mining="random", generator=torch.Generator().manual_seed(seed))
        seen.add(round(got.item(), 9))
    assert seen <= possible
    assert len(seen) > 1
    assert max(seen) <= loss(*points(*LINE), margin=1.0).item() + 1e-9  # batch-hard is the worst case


# --- zero, ignored pixels --------------------------------------------------------------------------


@pytest.mark.parametrize("mining", ["batch_hard", "all", "random"])
def test_single_class_gives_a_graph_connected_zero(mining):
    emb = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = L.pixel_triplet_loss(emb, torch.ones(2, 3, 3, dtype=torch.int64), mining=mining)
    assert out.item() == 0.0
    out.backward()
    assert emb.grad is not None and torch.equal(emb.grad, torch.zeros_like(emb))


def test_no_anchor_with_both_or_no_valid_pixel_gives_zero():
    emb, target = points([(0, 0), (1, 0)], [0, 1])  # each class a single pixel: no positive anywhere
    assert loss(emb, target).item() == 0.0
    everything_ignored = torch.full((1, 1, 2), 255)
    out = loss(emb, everything_ignored)
    out.backward()
    assert out.item() == 0.0 and torch.equal(emb.grad, torch.zeros_like(emb))


@pytest.mark.parametrize("mining", ["batch_hard", "all", "random"])
@pytest.mark.parametrize("pixels", [512, 8])
def test_ignored_pixels_are_never_read(mining, pixels):
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(2, 3, 6, 6, generator=g)
    target = torch.randint(0, 3, (2, 6, 6), generator=g)
    target[:, :2] = 7
    emb[:, :, :2] = torch.nan
    emb.requires_grad_()
    out = L.pixel_triplet_loss(emb, target, ignore_index=7, pixels=pixels, mining=mining, generator=g)
    out.backward()
    assert torch.isfinite(out) and out.item() > 0
    assert torch.isfinite(emb.grad).all() and (emb.grad[:, :, :2] == 0).all()


# --- sampling --------------------------------------------------------------------------------------


def labelled(counts: list[int], ignored: int = 0) -> torch.Tensor:
    """A ``(1, 1, W)`` target holding ``counts[c]`` pixels of class ``c`` (shuffled) and ``ignored`` 255s."""
    flat = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)] + [torch.full((ignored,), 255)])
    return flat[torch.randperm(len(flat), generator=torch.Generator().manual_seed(9))].reshape(1, 1, -1)


@pytest.mark.parametrize(
    ("counts", "pixels", "quotas"),
    [
        ([1000, 30, 5], 100, [65, 30, 5]),  # rarest first: 5 <= 33 all, 30 <= 47 all, the rest 65
        ([50, 50, 50], 100, [34, 33, 33]),  # share 33, leftover 1 to the lowest class id
        ([10, 200, 200], 101, [10, 46, 45]),  # 10 all; 91 over two: 45 each, leftover to class 1
        ([40, 7], 100, [40, 7]),  # fewer valid pixels than the budget: all of them
        ([5, 5, 5], 2, [1, 1, 0]),  # budget below the class count
    ],
)
def test_stratified_quotas(counts, pixels, quotas):
    target = labelled(counts, ignored=20)
    index = sample_pixels(target, pixels, generator=torch.Generator().manual_seed(0))
    assert len(index) == min(pixels, sum(counts)) == sum(quotas)
    assert len(set(index.tolist())) == len(index)  # without replacement
    labels = target.reshape(-1)[index]
    assert [(labels == c).sum().item() for c in range(len(counts))] == quotas  # and no 255


def test_sampling_is_uniform_within_a_class():
    target = labelled([10, 40])
    hits = torch.zeros(50)
    for seed in range(2000):
        hits[sample_pixels(target, 10, generator=torch.Generator().manual_seed(seed))] += 1
    in_class0 = target.reshape(-1) == 0
    # quotas 5 and 5: each class-0 pixel kept with p = 1/2, each class-1 pixel with p = 1/8
    assert ((hits[in_class0] - 1000).abs() < 150).all()  # binomial sd ~22
    assert ((hits[~in_class0] - 250).abs() < 80).all()  # sd ~15


def test_sampling_is_deterministic_with_a_generator():
    target = torch.randint(0, 4, (2, 30, 30), generator=torch.Generator().manual_seed(0))
    draw = [sample_pixels(target, 64, generator=torch.Generator().manual_seed(s)) for s in (5, 5, 6)]
    assert len(draw[0]) == 64
    assert torch.equal(draw[0], draw[1]) and not torch.equal(draw[0], draw[2])
    emb = torch.randn(2, 5, 30, 30)
    values = [
        L.pixel_triplet_loss(emb, target, pixels=64, mining=m, generator=torch.Generator().manual_seed(5))
        for m in ("random", "random", "batch_hard", "batch_hard")
    ]
    assert values[0] == values[1] and values[2] == values[3]


def test_bad_arguments():
    emb, target = points(*RECT)
    for kw, match in [({"mining": "hard"}, "mining"), ({"pixels": 1}, "pixels"), ({"margin": -1}, "margin")]:
        with pytest.raises(ValueError, match=match):
            L.pixel_triplet_loss(emb, target, **kw)


# --- module and spec -------------------------------------------------------------------------------


def test_module_calls_the_function():
    emb, target = points(*LINE)
    module = L.TripletLoss(margin=1.0, normalize=False, ignore_index=3)
    expected = L.pixel_triplet_loss(emb, target, margin=1.0, normalize=False, ignore_index=3)
    assert module(emb, target).item() == expected.item()
    assert "TripletLoss" in repr(module) and "margin=1.0" in repr(module)


def test_spec_term_on_logits():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 6, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 5, 6), generator=g)
    target[:, 0, :2] = 255
    spec = L.build_loss("ce+0.1*triplet:margin=0.3")
    assert isinstance(spec.terms[1], L.TripletLoss)
    got = spec(logits, target)
    # 52 valid pixels < 512: all are used, so the value is deterministic
    expected = L.cross_entropy(logits, target) + 0.1 * L.pixel_triplet_loss(logits, target, margin=0.3)
    assert torch.isfinite(got) and got.item() == pytest.approx(expected.item(), abs=1e-12)
    terms = L.parse_spec("triplet:margin=0.3,pixels=64,mining=all,normalize=false")
    assert terms[0].options == {"margin": 0.3, "pixels": 64, "mining": "all", "normalize": False}
    assert L.build_loss("ce+0.1*triplet:margin=0.3,mining=batch_hard")(logits, target).isfinite()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("triplet:margin=-1", "must be a number > 0"),
        ("triplet:margin=0", "must be a number > 0"),
        ("triplet:mining=foo", "one of batch_hard, all, random"),
        ("triplet:pixels=1", "an integer >= 2"),
        ("triplet:pixels=2.5", "an integer >= 2"),
        ("triplet:normalize=maybe", "true or false"),
        ("triplet:gamma=2", "its options: margin, pixels, mining, normalize"),
    ],
)
def test_bad_spec_options_raise_one_line_user_errors(spec, match):
    with pytest.raises(UserError, match=match) as err:
        L.build_loss(spec)
    assert "\n" not in str(err.value)


# --- it learns -------------------------------------------------------------------------------------


def nearest_mean_accuracy(emb: torch.Tensor, target: torch.Tensor) -> float:
    e = torch.nn.functional.normalize(emb, dim=1).permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
    y = target.reshape(-1)
    means = torch.stack([e[y == c].mean(0) for c in (0, 1)])
    return (torch.cdist(e, means).argmin(1) == y).double().mean().item()


def test_a_1x1_conv_embedding_learns_to_separate_two_classes():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    target = torch.zeros(2, 16, 16, dtype=torch.int64)
    target[:, :, 8:] = 1
    target[1, 4:12, 2:6] = 1
    # channel 0 carries the class (+-1), six more carry loud noise that a random projection mixes in
    image = 4 * torch.randn(2, 7, 16, 16, generator=g)
    image[:, 0] = (2 * target - 1) + 0.1 * torch.randn(2, 16, 16, generator=g)
    net = torch.nn.Conv2d(7, 8, 1)
    with torch.no_grad():
        assert nearest_mean_accuracy(net(image), target) < 0.9  # not separated before training
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(50):
        opt.zero_grad()
        L.pixel_triplet_loss(net(image), target, pixels=256, generator=g).backward()
        opt.step()
    with torch.no_grad():
        assert nearest_mean_accuracy(net(image), target) > 0.95
