"""Boundary-aware losses: Kervadec's boundary loss and a U-Net-style boundary-weighted cross-entropy.

The distance maps come from :func:`scipy.ndimage.distance_transform_edt` of the target, on the CPU, per
image and present class (no gradient flows through them); for large batches of many-class images
precompute them in the data pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt, find_objects, label

from segscope.losses.functional import as_float, match_target


def signed_distance_maps(target: torch.Tensor, num_classes: int, *, ignore_index: int = 255) -> torch.Tensor:
    """Signed distance to each class's boundary, ``(N, C, H, W)`` float32 on ``target``'s device.

    Outside class ``c``: the distance to the nearest pixel of ``c`` (positive); inside: minus the distance
    to the nearest pixel of another class, plus one (0 on the inner boundary), as Kervadec et al.'s
    ``one_hot2dist``. Ignored pixels belong to no class and never form a boundary. A class absent from
    an image, or covering all its valid pixels, has an all-zero map.
    """
    t = target.detach().cpu().numpy()
    out = np.zeros((t.shape[0], num_classes, *t.shape[1:]), dtype=np.float32)
    for n, labels in enumerate(t):
        ignored = labels == ignore_index
        for c in np.unique(labels[~ignored]):
            pos = labels == c
            if (pos | ignored).all():
                continue  # no other class: no boundary
            neg = ~pos & ~ignored
            out[n, c] = distance_transform_edt(~pos) * neg - (distance_transform_edt(pos | ignored) - 1) * pos
    return torch.from_numpy(out).to(target.device)


def boundary_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int = 255,
    classes: Sequence[int] | None = None,
) -> torch.Tensor:
    """Boundary loss ``mean_{c, x} p_c(x) φ_c(x)`` over valid pixels, ``φ`` from :func:`signed_distance_maps`.

    A distance-weighted integral over the region between the predicted and the true boundary: it is
    minimal (negative) when each class's probability mass lies exactly on that class, and it scales with
    distance rather than with region size, so small structures are not swamped. ``classes`` restricts the
    mean (the paper uses the foreground only); default all classes. Not usable alone: absent classes get
    no signal, so the paper combines it with a regional loss, ``"gdice+0.01*boundary"``, raising the
    boundary weight during training.

    References: Kervadec et al., "Boundary loss for highly unbalanced segmentation", MIDL 2019 (Medical
    Image Analysis 2021).
    """
    target = match_target(logits, target)
    x = as_float(logits)
    num_classes = x.shape[1]
    idx = list(range(num_classes)) if classes is None else list(classes)
    if not idx or not all(0 <= c < num_classes for c in idx):
        raise ValueError(f"boundary classes must be a non-empty subset of 0..{num_classes - 1}, got {idx}")
    phi = signed_distance_maps(target, num_classes, ignore_index=ignore_index).to(x.dtype)
    valid = (target != ignore_index).unsqueeze(1)
    prod = (x.softmax(1) * phi * valid)[:, idx]
    return prod.sum() / (valid.sum() * len(idx)).clamp(min=1)


def two_nearest_cell_distances(cells: np.ndarray, reach: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """``d1, d2``: per pixel, the distances to the nearest and the second-nearest cell of the binary map
    ``cells`` (its 8-connected components; 0 inside a cell for ``d1``), ``inf`` where there is none.

    Each cell's distance transform is computed in its bounding box grown by ``reach`` pixels only (exact
    there); farther pixels keep ``inf`` for that cell, which leaves ``d1 + d2 <= reach`` exact.
    """
    components, count = label(cells, structure=np.ones((3, 3), dtype=bool))
    d1 = np.full(cells.shape, np.inf)
    d2 = np.full(cells.shape, np.inf)
    grow = int(np.ceil(min(reach, max(cells.shape))))
    for k, box in enumerate(find_objects(components), start=1):
        box = tuple(slice(max(s.start - grow, 0), min(s.stop + grow, n)) for s, n in zip(box, cells.shape))
        dk = distance_transform_edt(components[box] != k)
        near, second = d1[box], d2[box]
        second[...] = np.minimum(second, np.maximum(near, dk))
        near[...] = np.minimum(near, dk)
    return d1, d2


def boundary_weight_map(
    target: torch.Tensor,
    *,
    w0: float = 10.0,
    sigma: float = 5.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = 255,
    cells: int | None = None,
) -> torch.Tensor:
    """U-Net pixel weights ``w(x) = w_c(x) + w0 exp(-d(x)^2 / (2 sigma^2))``, ``(N, H, W)`` float32.

    ``w_c`` is the class weight of the pixel's label (1 without ``weight``). ``cells`` (a class index, e.g.
    1 for ISBI's cell interiors): the paper's ``d = d_1 + d_2``, the distances to the nearest and the
    second-nearest cell (connected component of that class, :func:`two_nearest_cell_distances`), so the
    thin borders between touching cells weigh most; no term where fewer than two cells are near.
    ``cells=None``: a semantic version, ``d`` the distance to the nearest pixel of another class (1 next
    to a boundary; no term in a one-class image). Ignored pixels get weight 0.

    References: Ronneberger, Fischer & Brox, "U-Net: convolutional networks for biomedical image
    segmentation", MICCAI 2015, eq. 2 (w0 = 10, sigma ~ 5 px).
    """
    if sigma <= 0:
        raise ValueError(f"boundary_ce sigma must be > 0, got {sigma}")
    t = target.detach().cpu().numpy()
    dist = np.full(t.shape, np.inf)
    reach = sigma * np.sqrt(2 * np.log(1e6))  # beyond it the term is below w0 * 1e-6
    for n, labels in enumerate(t):
        ignored = labels == ignore_index
        if cells is not None:
            d1, d2 = two_nearest_cell_distances(labels == cells, reach)
            dist[n] = d1 + d2
            continue
        for c in np.unique(labels[~ignored]):
            pos = labels == c
            if not (pos | ignored).all():
                dist[n][pos] = distance_transform_edt(pos | ignored)[pos]
    valid = torch.from_numpy(~(t == ignore_index)).to(target.device)
    d = torch.from_numpy(dist).to(target.device, torch.float32)
    if weight is None:
        base = torch.ones_like(d)
    else:
        base = weight.to(d.device, d.dtype)[target.clamp(0, len(weight) - 1)]
    return (base + w0 * torch.exp(-(d**2) / (2 * sigma**2))) * valid


def boundary_weighted_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    w0: float = 10.0,
    sigma: float = 5.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = 255,
    cells: int | None = None,
) -> torch.Tensor:
    """Cross-entropy weighted per pixel by :func:`boundary_weight_map`, mean over valid pixels.

    U-Net's energy ``sum_x w(x) log p_y(x)``, averaged rather than summed so the scale does not depend on
    the image size; ``w0 = 0`` without ``weight`` is plain cross-entropy. Defaults ``w0 = 10``,
    ``sigma = 5`` px as in the paper; ``cells`` the class whose connected components are the cells (the
    paper's ``d_1 + d_2``; e.g. ``"ce+boundary_ce:cells=1"`` on ISBI 2012 where 1 is the cell interior).

    References: Ronneberger, Fischer & Brox, "U-Net", MICCAI 2015.
    """
    target = match_target(logits, target)
    x = as_float(logits)
    w = boundary_weight_map(target, w0=w0, sigma=sigma, weight=weight, ignore_index=ignore_index, cells=cells)
    w = w.to(x.dtype)
    nll = F.cross_entropy(x, target.clamp(0, x.shape[1] - 1), reduction="none")
    return (w * nll).sum() / (target != ignore_index).sum().clamp(min=1)
