"""Masked average pooling by hand, the heads' episode contract, PAR, the fine-tuning baseline and the
PANet-style scores, on tensors small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from segscope.fewshot.heads import (
    PrototypeHead,
    RelationHead,
    balanced_cross_entropy,
    episode_prototypes,
    finetune_logits,
)
from segscope.fewshot.pooling import cosine_scores, masked_average_pooling
from segscope.fewshot.scores import EpisodeScores


def test_masked_average_pooling_by_hand():
    # features at the mask's size: upsampling is the identity, the prototype is the plain masked mean
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[10.0, 0.0], [0.0, 0.0]]]])  # (1, 2, 2, 2)
    m = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])  # the left column
    proto = masked_average_pooling(f, m, eps=0.0)
    assert proto.tolist() == [[2.0, 5.0]]  # (1 + 3) / 2 and (10 + 0) / 2
    # soft weights: sum(f m) / sum(m)
    m = torch.tensor([[[0.5, 0.0], [0.0, 1.0]]])
    assert masked_average_pooling(f, m, eps=0.0)[0, 0].item() == pytest.approx((0.5 * 1 + 4) / 1.5)
    # a 1x1 feature map upsampled to any mask is constant: the prototype is that feature
    one = torch.tensor([[[[7.0]], [[-3.0]]]])
    assert masked_average_pooling(one, torch.ones(1, 5, 4)).tolist()[0] == pytest.approx(
        [7.0, -3.0], abs=1e-4
    )
    assert masked_average_pooling(f, torch.zeros(1, 2, 2)).abs().sum() == 0  # empty mask: zero prototype


def test_cosine_scores_by_hand():
    f = torch.tensor([[[[3.0]], [[4.0]]]])  # one pixel, feature (3, 4)
    p = torch.tensor([[3.0, 4.0], [4.0, -3.0], [-6.0, -8.0]])
    assert cosine_scores(f, p, scale=20.0).flatten().tolist() == pytest.approx([20.0, 0.0, -20.0], abs=1e-4)


def test_episode_prototypes_pool_background_over_every_support_image():
    emb = torch.zeros(2, 1, 1, 2, 2)  # 2 ways, 1 shot, D = 1
    emb[0, 0, 0] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    emb[1, 0, 0] = torch.tensor([[5.0, 6.0], [7.0, 8.0]])
    masks = torch.tensor([[[[1, 0], [255, 0]]], [[[0, 1], [1, 255]]]])
    protos = episode_prototypes(emb, masks)
    bg0, bg1 = (2 + 4) / 2, 5.0  # background of each support image, then their mean
    assert protos[:, 0].tolist() == pytest.approx([(bg0 + bg1) / 2, 1.0, (6 + 7) / 2], abs=1e-3)


def synthetic_episode(ways=1, shots=1, d=8, seed=0):
    """Features where the class is a feature direction: class pixels have +e_0 (way k: +e_k)."""
    g = torch.Generator().manual_seed(seed)
    h = w = 12

    def image(way):
        mask = torch.zeros(h, w, dtype=torch.long)
        r, c = torch.randint(0, 6, (2,), generator=g)
        mask[r : r + 6, c : c + 6] = 1
        f = torch.randn(d, h, w, generator=g) * 0.3
        f[way] += 2.0 * mask
        f[d - 1] += 2.0 * (1 - mask)
        return f, mask

    sf, sm = zip(*[zip(*[image(k) for _ in range(shots)]) for k in range(ways)])
    sf = torch.stack([torch.stack(s) for s in sf])
    sm = torch.stack([torch.stack(s) for s in sm])
    qf, qm = image(0)
    return sf, sm, qf[None], qm[None]


def test_heads_follow_the_episode_contract_and_learn():
    sf, sm, qf, ql = synthetic_episode(ways=2, shots=3)
    for head in (PrototypeHead(8, dim=16), RelationHead(8, dim=8, hidden=16)):
        logits = head.logits(sf, sm, qf)
        assert logits.shape == (1, 3, 12, 12)
        loss = head.loss(sf, sm, qf, ql)
        loss.backward()
        assert all(p.grad is not None for p in head.parameters())
    torch.manual_seed(0)
    head = PrototypeHead(8, dim=16)
    opt = torch.optim.Adam(head.parameters(), 1e-2)
    for i in range(60):
        sf, sm, qf, ql = synthetic_episode(seed=i)
        opt.zero_grad()
        head.loss(sf, sm, qf, ql).backward()
        opt.step()
    sf, sm, qf, ql = synthetic_episode(seed=1000)
    assert (head.predict(sf, sm, qf) == ql).float().mean() > 0.95


def test_par_term_adds_the_support_loss_of_query_prototypes():
    sf, sm, qf, ql = synthetic_episode()
    torch.manual_seed(0)
    with_par, without = PrototypeHead(8, dim=16, par_weight=1.0), PrototypeHead(8, dim=16, par_weight=0.0)
    without.load_state_dict(with_par.state_dict())
    sup, qry = with_par._embed(sf, qf)
    size = sm.shape[-2:]
    logits = F.interpolate(cosine_scores(qry, episode_prototypes(sup, sm)), size=size, mode="bilinear")
    pred = logits.argmax(1)
    protos = torch.stack([masked_average_pooling(qry, (pred == k).float()).mean(0) for k in (0, 1)])
    s_logits = F.interpolate(cosine_scores(sup[0], protos), size=size, mode="bilinear")
    par = balanced_cross_entropy(s_logits, sm[0])
    diff = with_par.loss(sf, sm, qf, ql) - without.loss(sf, sm, qf, ql)
    assert diff.item() == pytest.approx(par.item(), rel=1e-5)


def test_finetune_baseline_fits_the_support_only():
    sf, sm, qf, ql = synthetic_episode(shots=2)
    pred = finetune_logits(sf, sm, qf, steps=60).argmax(1)
    assert (pred == ql).float().mean() > 0.95
    flipped = finetune_logits(sf, 1 - sm, qf, steps=60).argmax(1)  # support says the other region
    assert (flipped == 1 - ql).float().mean() > 0.95


def test_scores_accumulate_over_episodes_as_panet_reports_them():
    s = EpisodeScores(("a", "b", "c"))
    # episode 1, class 1 ("b"): tp 2, fp 1, fn 1; an ignored pixel counts for nothing
    s.update(np.array([[1, 1, 1, 0, 0]]), np.array([[1, 1, 0, 1, 255]]), (1,))
    # episode 2, class 1 again: tp 1, fp 0, fn 0
    s.update(np.array([[1, 0]]), np.array([[1, 0]]), (1,))
    # episode 3, class 2 ("c"): nothing predicted: tp 0, fn 2
    s.update(np.array([[0, 0, 0]]), np.array([[1, 1, 0]]), (2,))
    iou = s.per_class_iou()
    assert iou == {"b": pytest.approx(3 / 5), "c": 0.0}
    assert s.mean_iou() == pytest.approx(0.3)
    # FB over the valid pixels: background tp = 0 + 1 + 1, fp = 1 + 0 + 2, fn = 1 + 0 + 0 -> 2/6;
    # foreground tp = 2 + 1 + 0, fp = 1 + 0 + 0, fn = 1 + 0 + 2 -> 3/7
    assert s.fb_iou() == pytest.approx((2 / 6 + 3 / 7) / 2)


def test_pooling_without_upsampling_equals_the_papers_upsampled_formula():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(3, 5, 4, 6, generator=g, dtype=torch.float64)
    m = (torch.rand(3, 32, 45, generator=g) > 0.6).double()
    up = F.interpolate(f, size=(32, 45), mode="bilinear", align_corners=False)  # PANet Eq. 1 as written
    expected = (up * m[:, None]).sum((2, 3)) / (m.sum((1, 2))[:, None] + 1e-5)
    torch.testing.assert_close(masked_average_pooling(f, m), expected, rtol=1e-10, atol=1e-10)
    f.requires_grad_(True)  # and the gradient with respect to the features is the same
    (ga,) = torch.autograd.grad(masked_average_pooling(f, m).sum(), f)
    up = F.interpolate(f, size=(32, 45), mode="bilinear", align_corners=False)
    (gb,) = torch.autograd.grad(((up * m[:, None]).sum((2, 3)) / (m.sum((1, 2))[:, None] + 1e-5)).sum(), f)
    torch.testing.assert_close(ga, gb)


def test_balanced_cross_entropy_weights_by_hand():
    logits = torch.tensor([[[[2.0, 0.0, 1.0, 0.5]], [[0.0, 1.0, 0.0, 0.0]]]])  # (1, 2, 1, 4)
    labels = torch.tensor([[[0, 0, 0, 1]]])  # 3 background, 1 object
    w0, w1 = (4 / (2 * 3)) ** 0.5, (4 / (2 * 1)) ** 0.5
    nll = -torch.log_softmax(logits, 1)[0, :, 0]  # (2, 4)
    expected = (w0 * (nll[0, 0] + nll[0, 1] + nll[0, 2]) + w1 * nll[1, 3]) / (3 * w0 + w1)
    assert balanced_cross_entropy(logits, labels).item() == pytest.approx(expected.item())
    ignored = torch.tensor([[[0, 255, 255, 1]]])  # ignore pixels neither count nor weigh
    w = (2 / (2 * 1)) ** 0.5
    expected = (w * nll[0, 0] + w * nll[1, 3]) / (2 * w)
    assert balanced_cross_entropy(logits, ignored).item() == pytest.approx(expected.item())
