"""Triplet loss on pixel embeddings: anchor / positive / negative pixels sampled from the masks.

The margin triplet loss ``relu(d(a, p) - d(a, n) + margin)`` of Schroff, Kalenichenko & Philbin (FaceNet,
CVPR 2015), with the batch-hard mining of Hermans, Beyer & Leibe ("In Defense of the Triplet Loss for
Person Re-Identification", arXiv 2017), applied to pixels: a pixel's embedding is its ``D``-vector in an
``(N, D, H, W)`` map and its class is its label in the ``(N, H, W)`` target.

Sampling (:func:`sample_pixels`): of the valid (not ``ignore_index``) pixels of the whole batch, at most
``pixels`` are kept; when there are no more valid pixels than that, all of them. Otherwise the budget is
split between the ``K`` classes present by max-min fair allocation (water filling): classes are visited
from the rarest up (ties: lower label first), each taking ``min(n_c, floor(B / k))`` pixels, ``B`` the
budget left and ``k`` the number of classes not yet visited; once a class has more pixels than that share,
it and all the rest get the share, and the ``B mod k`` leftover pixels go one each to the lowest labels
among them. So exactly ``pixels`` are kept, a class with fewer pixels than its share gives them all and
the unused share goes to the others, and within a class the kept pixels are a uniform random subset
(without replacement) of that class's valid pixels in the batch.

:class:`TripletLoss` is the spec term ``triplet`` (``"ce+0.1*triplet:margin=0.3"``): there the per-pixel
logit vector is the embedding (``D = C``). A model with a dedicated embedding head calls
:func:`pixel_triplet_loss` on that head's output instead.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from segscope.losses.functional import as_float, match_target
from segscope.losses.modules import FunctionalLoss

MINING = ("batch_hard", "all", "random")
DIST_EPS = 1e-12  # squared distances are clamped here before the sqrt: finite gradient at zero distance


def _quotas(counts: list[int], pixels: int) -> list[int]:
    """Per-class sample sizes: max-min fair split of ``pixels`` over ``counts`` (module docstring)."""
    if sum(counts) <= pixels:
        return list(counts)
    quotas = [0] * len(counts)
    budget, left = pixels, len(counts)
    order = sorted(range(len(counts)), key=lambda i: (counts[i], i))
    for pos, i in enumerate(order):
        share = budget // left
        if counts[i] > share:  # this class and every larger one get the share, plus the leftover
            rest = sorted(order[pos:])
            extra = budget - share * len(rest)
            for j, c in enumerate(rest):
                quotas[c] = share + (1 if j < extra else 0)
            return quotas
        quotas[i] = counts[i]
        budget -= counts[i]
        left -= 1
    return quotas  # not reached: sum(counts) > pixels means some class exceeds its share


def sample_pixels(
    target: torch.Tensor,
    pixels: int,
    *,
    ignore_index: int | None = 255,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Flat indices into ``target.reshape(-1)`` of at most ``pixels`` valid pixels, stratified by class.

    The scheme is in the module docstring. The indices come grouped by class (ascending label); randomness
    comes from ``generator`` (the global generator when ``None``), so a seeded generator repeats the draw.
    """
    flat = target.reshape(-1)
    valid = torch.ones_like(flat, dtype=torch.bool) if ignore_index is None else flat != ignore_index
    index = valid.nonzero().squeeze(1)
    if index.numel() <= pixels:
        return index
    device = generator.device if generator is not None else flat.device
    perm = torch.randperm(index.numel(), generator=generator, device=device).to(flat.device)
    shuffled = index[perm]
    grouped = shuffled[torch.sort(flat[shuffled], stable=True).indices]  # by class, random within a class
    counts = torch.unique(flat[grouped], sorted=True, return_counts=True)[1].tolist()
    blocks = torch.split(grouped, counts)
    return torch.cat([block[:q] for block, q in zip(blocks, _quotas(counts, pixels))])


def _distances(x: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances ``(M, M)`` of the rows of ``x``: the Gram form (``O(M^2)`` memory,
    not ``O(M^2 D)``), squared distances clamped at :data:`DIST_EPS` before the square root."""
    sq = (x * x).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    return d2.clamp_min(DIST_EPS).sqrt()


def _all_triplets(d: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean of ``relu(d[a, p] - d[a, n] + margin)`` over every valid ``(a, p, n)``, in ``O(M^2 log M)``.

    Per anchor the negatives' distances ``s`` are sorted; for a positive with ``t = d[a, p] + margin`` the
    sum over negatives is ``c t - (s_1 + ... + s_c)`` where ``c = #{s < t}``, so no ``M^3`` tensor is built.
    """
    s = torch.where(neg, d, torch.inf).sort(1).values  # per row: the negatives ascending, then inf
    finite = torch.where(torch.isfinite(s), s, 0.0)
    prefix = torch.cat([torch.zeros_like(s[:, :1]), finite.cumsum(1)], 1)  # prefix[:, c] = s_1 + ... + s_c
    t = d + margin
    c = torch.searchsorted(s.detach().contiguous(), t.detach().contiguous())
    per_pair = c.to(d.dtype) * t - prefix.gather(1, c)
    count = (pos.sum(1) * neg.sum(1)).sum()
    return torch.where(pos, per_pair, 0.0).sum() / count


def pixel_triplet_loss(
    embeddings: torch.Tensor,
    target: torch.Tensor,
    *,
    margin: float = 0.5,
    pixels: int = 512,
    mining: Literal["batch_hard", "all", "random"] = "batch_hard",
    normalize: bool = True,
    ignore_index: int | None = 255,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Triplet loss of ``embeddings (N, D, H, W)`` over pixels sampled from ``target (N, H, W)``.

    Up to ``pixels`` valid pixels of the batch are sampled (:func:`sample_pixels`); pixels equal to
    ``ignore_index`` (``None``: none ignored) are never sampled, so their embeddings are never read. With
    ``normalize`` the sampled embeddings are L2-normalised (distances then lie in ``[0, 2]``). With ``d`` the
    Euclidean distance, a positive of anchor ``a`` is another sampled pixel of its class and a negative one
    of another class; anchors lacking either are skipped, and

    - ``batch_hard`` (Hermans et al.): mean over anchors of ``relu(max_p d(a, p) - min_n d(a, n) + margin)``;
    - ``all`` (FaceNet): mean of ``relu(d(a, p) - d(a, n) + margin)`` over *all* valid triplets, the zero
      ones included (Hermans et al.'s variant averaging only the non-zero ones is not offered);
    - ``random``: mean over anchors of the same with one uniformly drawn positive and negative.

    When no anchor has both (one class in the batch, or no valid pixel) the result is a zero still connected
    to the graph (``0 * sum`` of the sampled embeddings), so ``backward`` works. A target larger than the
    map is centre-cropped, as for the other losses.
    """
    if mining not in MINING:
        raise ValueError(f"mining must be one of {', '.join(MINING)}, not {mining!r}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, not {margin}")
    if pixels < 2:
        raise ValueError(f"pixels must be >= 2, not {pixels}")
    target = match_target(embeddings, target)
    emb = as_float(embeddings)
    index = sample_pixels(target, pixels, ignore_index=ignore_index, generator=generator)
    x = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])[index.to(emb.device)]
    y = target.reshape(-1)[index].to(emb.device)
    if normalize:
        x = F.normalize(x, dim=1)
    same = y[:, None] == y[None, :]
    pos = same & ~torch.eye(len(y), dtype=torch.bool, device=y.device)
    neg = ~same
    anchors = pos.any(1) & neg.any(1)
    if not bool(anchors.any()):
        return x.sum() * 0.0
    d = _distances(x)
    if mining == "all":
        return _all_triplets(d, pos, neg, margin)
    if mining == "batch_hard":
        d_ap = torch.where(pos, d, -torch.inf).amax(1)
        d_an = torch.where(neg, d, torch.inf).amin(1)
    else:
        device = generator.device if generator is not None else d.device
        keys = torch.rand(d.shape, generator=generator, device=device, dtype=d.dtype).to(d.device)
        p = torch.where(pos, keys, -1.0).argmax(1, keepdim=True)
        n = torch.where(neg, keys, -1.0).argmax(1, keepdim=True)
        d_ap, d_an = d.gather(1, p).squeeze(1), d.gather(1, n).squeeze(1)
    return F.relu(d_ap[anchors] - d_an[anchors] + margin).mean()


class TripletLoss(FunctionalLoss):
    """:func:`pixel_triplet_loss` as a loss term (spec name ``triplet``).

    On a segmentation model's logits the per-pixel logit vector is the embedding, so it is meant as an
    auxiliary term next to a pixel-wise loss (``"ce+0.1*triplet"``); an embedding head's output can be
    passed instead, or given to :func:`pixel_triplet_loss` directly.
    """

    function = staticmethod(pixel_triplet_loss)

    def __init__(
        self,
        *,
        margin: float = 0.5,
        pixels: int = 512,
        mining: Literal["batch_hard", "all", "random"] = "batch_hard",
        normalize: bool = True,
        ignore_index: int | None = 255,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(
            margin=margin,
            pixels=pixels,
            mining=mining,
            normalize=normalize,
            ignore_index=ignore_index,
            generator=generator,
        )

    def forward(self, logits_or_embeddings: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().forward(logits_or_embeddings, target)
