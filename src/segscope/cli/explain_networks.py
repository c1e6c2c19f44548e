"""``segscope explain dilation|unpooling``: the network-level views (receptive fields, DeconvNet's decoder).

The lecture's "Dilated convolution" / "Scaling up the dilation" (:mod:`segscope.ops.receptive_field`) and
"Impact of unpooling and deconvolution" (:mod:`segscope.models.activations`, Noh et al. ICCV 2015, Fig. 4);
registered on ``segscope explain`` by :mod:`segscope.cli.explain`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from segscope.errors import UserError


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{option}: expected integers like '1,2,4', got {text!r}") from None
    if not values or min(values) < 1:
        raise UserError(f"{option}: expected positive integers like '1,2,4', got {text!r}")
    return values


def explain_dilation(args: argparse.Namespace) -> tuple[str, dict[str, np.ndarray]]:
    from segscope.ops.receptive_field import empirical_receptive_field, support_picture

    rates = _int_list(args.rates, "--rates")
    kernel = _int_list(args.kernel, "--kernel") if args.kernel else [3]
    if len(kernel) != 1:
        raise UserError(f"--kernel: dilation takes one kernel size k, got {args.kernel!r}")
    k = kernel[0]
    fields = empirical_receptive_field(rates, k)
    rows = [("layer", "rate", "RF 1+sum(k-1)r", "RF autograd", "touched", "of extent^2", "coverage")]
    for f in fields:
        rows.append(
            (
                str(f.layer),
                str(f.rate),
                str(f.analytic),
                str(f.extent),
                str(f.touched),
                str(f.extent**2),
                f"{f.coverage:.3f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows)
    last = fields[-1]
    verdict = (
        "the field is covered fully (no gridding)"
        if last.coverage == 1
        else f"gridding: the centre output sees only {last.touched} of the {last.extent}x{last.extent} "
        "pixels of its field"
    )
    parts = [
        f"dilated convolution stack, kernel {k}x{k}, stride 1, rates {','.join(map(str, rates))}: "
        f"receptive field {last.analytic}",
        "receptive field per layer (autograd: support of d y_centre / d x, all-ones weights)\n" + table,
        f"touched fraction of the field: {last.coverage:.3f} - {verdict}",
    ]
    if last.coverage < 1 and last.extent <= 41:
        parts.append(
            f"support of the centre output ('#' touched, '.' hole):\n{support_picture(last.gradient)}"
        )
    panels = {
        f"layer {f.layer}: r={f.rate}, RF {f.extent}, {f.coverage:.0%} touched": f.gradient for f in fields
    }
    return "\n\n".join(parts), panels


def explain_unpooling(args: argparse.Namespace) -> tuple[str, dict[str, np.ndarray]]:
    import segscope
    from segscope.data import read_image
    from segscope.models.activations import segmenter_activations

    if not args.run or args.image is None:
        raise UserError("explain unpooling needs --run RUN_DIR and --image IMAGE")
    seg = segscope.load(args.run)
    image = read_image(args.image)
    stages = segmenter_activations(seg, image)
    base = getattr(seg, "base", seg)
    rows = [("stage", "module", "shape CxHxW", "mean", "non-zero")]
    rows += [
        (s.name, s.module, "x".join(map(str, s.shape)), f"{s.mean:.4f}", f"{s.nonzero:.3f}") for s in stages
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join(
        "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    )
    unpooled = [s.nonzero for s in stages if s.kind == "unpool"]
    dense = [s.nonzero for s in stages if s.kind in ("deconv", "conv")]
    parts = [
        f"decoder activations of {base.name} ({args.run}) on {args.image.name} "
        f"{image.shape[1]}x{image.shape[0]}",
        table,
        f"non-zero fraction: {np.mean(unpooled):.3f} on average after unpooling (values only at the "
        f"max-pooling switches),\n{np.mean(dense):.3f} after the (de)convolutions that densify them",
    ]
    if stages and stages[-1].shape[1:] != stages[-1].top_map.shape:
        parts.append(
            f"statistics and maps cover the image's part of each map (the model pads its input to "
            f"{stages[-1].shape[1]}x{stages[-1].shape[2]})"
        )
    if not seg.history:
        parts.append(
            "note: this run is untrained (empty history): these are the activations of an untrained network"
        )
    panels = {"input image": image[..., 0] if image.shape[2] == 1 else image}
    panels.update({f"{s.name} (ch {s.top_channel})": s.top_map for s in stages})
    return "\n\n".join(parts), panels


def save_grid_figure(path: Path, panels: dict[str, np.ndarray], *, title: str, holes: bool) -> None:
    """Panels on a grid (at most 6 a row), Agg backend; ``holes``: zeros drawn white (untouched pixels),
    and the support's bounding box (the receptive field) outlined, otherwise each map min-max
    normalised; an (H, W, 3) panel is shown as an image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from segscope.io import atomic_path

    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("png", "pdf", "svg"):
        raise UserError(f"--figure {path}: use a .png, .pdf or .svg file name")
    cols = min(len(panels), 6 if holes else 5)
    rows = -(-len(panels) // cols)
    figure = Figure(figsize=(3.4 * cols, 3.4 * rows + 0.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = np.atleast_1d(figure.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, (name, data) in zip(axes, panels.items()):
        if data.ndim == 3:
            ax.imshow(data, interpolation="nearest")
        elif holes:
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            ax.imshow(np.ma.masked_equal(data, 0), cmap="viridis", interpolation="nearest")
            rows_nz, cols_nz = np.nonzero(data)
            box = (cols_nz.min() - 0.5, rows_nz.min() - 0.5)
            size = (cols_nz.max() - cols_nz.min() + 1, rows_nz.max() - rows_nz.min() + 1)
            ax.add_patch(Rectangle(box, *size, fill=False, edgecolor="red", linestyle="--", linewidth=1))
        else:
            span = float(data.max() - data.min())
            shown = (data - data.min()) / span if span else (data != 0).astype(float)
            ax.imshow(shown, cmap="magma", interpolation="nearest", vmin=0, vmax=1)
            name += "" if span else f" = {float(data.flat[0]):.3g} everywhere"
        ax.set_title(name, fontsize=9)
    figure.suptitle(title)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=suffix, dpi=100)
