"""The few-shot methods, as small heads on the frozen features of :mod:`segscope.fewshot.features`.

Every head maps an episode's tensors to query logits ``(Q, 1 + ways, H, W)`` (channel 0 background,
channel ``k + 1`` way ``k``):

* ``support_feats`` ``(W, S, D, h, w)`` and ``support_masks`` ``(W, S, H, W)`` int64 (1 the way's class,
  0 other, 255 ignore), ``query_feats`` ``(Q, D, h, w)``; training also takes ``query_labels``
  ``(Q, H, W)`` (0 background, ``k + 1`` way ``k``, 255 ignore).

:class:`PrototypeHead` — PANet (Wang et al., "PANet: Few-Shot Image Semantic Segmentation with Prototype
Alignment", ICCV 2019; Fig. 2, Eq. 1-6): masked average pooling of support features into one prototype per
class plus one background prototype from every support image's background, cosine similarity x 20, and
prototype alignment regularisation (PAR: prototypes pooled from the query under its predicted mask must
segment the support images). Departures: a trainable two-layer 1x1 projection on the frozen features
(PANet trains VGG16 itself), and the multi-level Lite0 features described in ``features.py``.

:class:`RelationHead` — siamese matching in the manner of the relation network (Sung et al., "Learning to
Compare: Relation Network for Few-Shot Learning", CVPR 2018), made dense as CANet does (Zhang et al.,
CVPR 2019): query and support go through the same encoder and projection; for each prototype a small
conv net scores ``[query feature, prototype, cosine]`` per pixel, a learned similarity added to the scaled
cosine (a residual, so training starts from prototype matching).

:func:`finetune_logits` — the baseline: a fresh linear classifier (a 1x1 conv) fitted on the support
pixels only, with the same frozen features, by class-balanced cross-entropy.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from segscope.fewshot.pooling import cosine_scores, masked_average_pooling

IGNORE = 255


def balanced_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with per-episode class weights ``sqrt(n_valid / (K * n_c))`` over the classes present
    (a softened inverse frequency): a small object is most of what an episode is about, yet a few percent
    of its pixels, and unweighted the heads learn to answer "background" (a departure from PANet's plain
    cross-entropy, measured on CamVid's fold 3)."""
    k = logits.shape[1]
    valid = labels[labels != IGNORE]
    counts = torch.bincount(valid, minlength=k).float()
    present = counts > 0
    weight = torch.zeros(k, dtype=logits.dtype, device=logits.device)
    weight[present] = (valid.numel() / (present.sum() * counts[present])).sqrt().to(logits.dtype)
    return F.cross_entropy(logits, labels, weight=weight, ignore_index=IGNORE)


def projection(in_channels: int, dim: int) -> nn.Module:
    """Two 1x1 convs (the only trainable layers on the frozen features of the prototype head)."""
    return nn.Sequential(nn.Conv2d(in_channels, dim, 1), nn.ReLU(inplace=True), nn.Conv2d(dim, dim, 1))


def episode_prototypes(support_emb: torch.Tensor, support_masks: torch.Tensor) -> torch.Tensor:
    """``(1 + W, D)``: the background prototype (masked average over every support image's background,
    then over images) followed by each way's foreground prototype (averaged over its shots)."""
    w, s = support_masks.shape[:2]
    emb = support_emb.flatten(0, 1)  # (W*S, D, h, w)
    masks = support_masks.flatten(0, 1)
    fg = masked_average_pooling(emb, (masks == 1).float()).view(w, s, -1).mean(1)
    bg = masked_average_pooling(emb, (masks == 0).float()).mean(0, keepdim=True)
    return torch.cat([bg, fg], 0)


class FewShotHead(nn.Module):
    """Common interface: :meth:`logits`, :meth:`loss`, :meth:`predict`."""

    method = "head"

    def logits(self, support_feats, support_masks, query_feats) -> torch.Tensor:
        """``(Q, 1 + W, H, W)`` query logits; every head defines it."""
        raise TypeError(f"{type(self).__name__} must implement logits")

    def loss(self, support_feats, support_masks, query_feats, query_labels) -> torch.Tensor:
        logits = self.logits(support_feats, support_masks, query_feats)
        return balanced_cross_entropy(logits, query_labels)

    @torch.no_grad()
    def predict(self, support_feats, support_masks, query_feats) -> torch.Tensor:
        """``(Q, H, W)`` int64: 0 background, ``k + 1`` way ``k``."""
        return self.logits(support_feats, support_masks, query_feats).argmax(1)

    def config(self) -> dict:
        return dict(self._config)


class PrototypeHead(FewShotHead):
    """PANet's prototype matching with alignment regularisation (see the module docstring)."""

    method = "prototypes"

    def __init__(self, in_channels: int, *, dim: int = 256, scale: float = 20.0, par_weight: float = 1.0):
        super().__init__()
        self._config = {"in_channels": in_channels, "dim": dim, "scale": scale, "par_weight": par_weight}
        self.project = projection(in_channels, dim)
        self.scale, self.par_weight = float(scale), float(par_weight)

    def _embed(self, support_feats, query_feats):
        w, s = support_feats.shape[:2]
        sup = self.project(support_feats.flatten(0, 1))
        return sup.view(w, s, *sup.shape[1:]), self.project(query_feats)

    def logits(self, support_feats, support_masks, query_feats) -> torch.Tensor:
        sup, qry = self._embed(support_feats, query_feats)
        scores = cosine_scores(qry, episode_prototypes(sup, support_masks), self.scale)
        return F.interpolate(scores, size=support_masks.shape[-2:], mode="bilinear", align_corners=False)

    def loss(self, support_feats, support_masks, query_feats, query_labels) -> torch.Tensor:
        sup, qry = self._embed(support_feats, query_feats)
        size = support_masks.shape[-2:]
        scores = cosine_scores(qry, episode_prototypes(sup, support_masks), self.scale)
        logits = F.interpolate(scores, size=size, mode="bilinear", align_corners=False)
        loss = balanced_cross_entropy(logits, query_labels)
        if self.par_weight == 0:
            return loss
        # PAR (PANet Eq. 5-6): prototypes from the query under its predicted (not true) mask, one way at a
        # time, must segment that way's support images
        pred = logits.argmax(1).detach()
        par = []
        for way in range(support_masks.shape[0]):
            q_masks = torch.stack([(pred == 0).float(), (pred == way + 1).float()], 1)  # (Q, 2, H, W)
            protos = torch.stack(
                [masked_average_pooling(qry, q_masks[:, k]).mean(0) for k in range(2)]
            )  # (2, D): background, this way
            s_logits = F.interpolate(
                cosine_scores(sup[way], protos, self.scale), size=size, mode="bilinear", align_corners=False
            )
            par.append(balanced_cross_entropy(s_logits, support_masks[way]))
        return loss + self.par_weight * torch.stack(par).mean()


class RelationHead(FewShotHead):
    """Siamese matching with a learned relation module (see the module docstring)."""

    method = "siamese"

    def __init__(self, in_channels: int, *, dim: int = 128, hidden: int = 128, scale: float = 20.0):
        super().__init__()
        self._config = {"in_channels": in_channels, "dim": dim, "hidden": hidden, "scale": scale}
        self.scale = float(scale)
        self.project = projection(in_channels, dim)
        self.relation = nn.Sequential(
            nn.Conv2d(2 * dim + 1, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden // 2, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden // 2, 1, 1),
        )

    def logits(self, support_feats, support_masks, query_feats) -> torch.Tensor:
        w, s = support_feats.shape[:2]
        sup = self.project(support_feats.flatten(0, 1))
        qry = self.project(query_feats)  # the same encoder and projection for both: siamese
        protos = episode_prototypes(sup.view(w, s, *sup.shape[1:]), support_masks)  # (1 + W, D)
        cos = cosine_scores(qry, protos, 1.0)  # (Q, 1 + W, h, w)
        q, d, h, ww = qry.shape
        scores = []
        for k in range(protos.shape[0]):
            pair = torch.cat([qry, protos[k].view(1, d, 1, 1).expand(q, d, h, ww), cos[:, k : k + 1]], 1)
            scores.append(self.relation(pair))
        # the relation module learns a correction to the scaled cosine: it starts where prototype matching
        # is and cannot fall into "all background" before it has learned anything
        scores = self.scale * cos + torch.cat(scores, 1)
        return F.interpolate(scores, size=support_masks.shape[-2:], mode="bilinear", align_corners=False)


def finetune_logits(
    support_feats: torch.Tensor,
    support_masks: torch.Tensor,
    query_feats: torch.Tensor,
    *,
    steps: int = 50,
    lr: float = 0.05,
    pixels: int = 2000,
    seed: int = 0,
) -> torch.Tensor:
    """The baseline: fit a 1x1-conv classifier on ``pixels`` sampled support pixels per image (all of
    the class's pixels when fewer, the rest background), features read at those pixels by bilinear
    sampling; class-balanced cross-entropy, Adam, ``steps`` full-batch steps. Returns query logits."""
    w, s, d = support_feats.shape[:3]
    size = support_masks.shape[-2:]
    gen = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for way in range(w):
        for shot in range(s):
            mask = support_masks[way, shot]
            for value, label in ((1, way + 1), (0, 0)):
                idx = torch.nonzero(mask.flatten() == value).squeeze(1)
                if len(idx) > pixels // 2:
                    idx = idx[torch.randperm(len(idx), generator=gen)[: pixels // 2]]
                if len(idx) == 0:
                    continue
                yy, xx = idx // size[1], idx % size[1]
                grid = torch.stack(
                    [(xx.float() + 0.5) / size[1] * 2 - 1, (yy.float() + 0.5) / size[0] * 2 - 1], -1
                )  # align_corners=False pixel centres
                f = F.grid_sample(support_feats[way, shot][None], grid.view(1, 1, -1, 2), align_corners=False)
                xs.append(f[0, :, 0].T)
                ys.append(torch.full((len(idx),), label, dtype=torch.long))
    x, y = torch.cat(xs), torch.cat(ys)
    counts = torch.bincount(y, minlength=w + 1).float()
    weight = torch.where(counts > 0, counts.sum() / (counts.clamp(min=1) * (counts > 0).sum()), 0.0)
    mu, sd = x.mean(0), x.std(0) + 1e-3  # standardised features: one learning rate fits every channel
    linear = nn.Linear(d, w + 1)
    opt = torch.optim.Adam(linear.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(linear((x - mu) / sd), y, weight=weight).backward()
            opt.step()
    with torch.no_grad():
        q = (query_feats - mu.view(1, d, 1, 1)) / sd.view(1, d, 1, 1)
        logits = torch.einsum("qdhw,kd->qkhw", q, linear.weight) + linear.bias.view(1, -1, 1, 1)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


HEADS = {"prototypes": PrototypeHead, "siamese": RelationHead}
