"""``segscope explain conv|transposed|interp|dilation|unpooling``: the numbers behind the primitives.

Teaching command over :mod:`segscope.ops`: a convolution as the matrix ``C``, the transposed
convolution as ``C.T``, and interpolation as row/column weight matrices, printed as tables, with an
optional figure. Defaults reproduce the lecture's worked example. ``dilation`` gives the receptive
field of a stack of dilated convolutions (formula and autograd) and its gridding holes
(:mod:`segscope.ops.receptive_field`); ``unpooling`` shows a trained DeconvNet/SegNet run's decoder
activations, sparse after each unpooling and dense after its (de)convolutions
(:mod:`segscope.models.activations`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from segscope.cli.explain_networks import explain_dilation, explain_unpooling, save_grid_figure
from segscope.errors import UserError

_EPILOG = """examples:
  segscope explain conv                 # the lecture's 4x4 input * 3x3 kernel = [[122,148],[126,134]]
  segscope explain transposed           # C.T @ [2,1,4,4] = the lecture's 4x4 result
  segscope explain conv --stride 2 --padding 1 --figure conv.png
  segscope explain interp --mode bicubic --scale 2 --cubic-a -0.5
  segscope explain interp --input "1,2,3" --mode linear --scale 2.5 --align-corners
  segscope explain dilation --rates 1,2,4     # receptive field 3, 7, 15 (formula = autograd)
  segscope explain dilation --rates 2,2,2 --figure grid.png    # gridding: holes in the field
  segscope explain unpooling --run runs/deconvnet --image img.png --figure unpool.png

Matrices are written as rows separated by ';' and values by ',' (e.g. "1,4,1;1,4,3;3,3,1")."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``explain`` on the main CLI's sub-parsers."""
    parser = subparsers.add_parser(
        "explain",
        help="print convolution / transposed convolution / interpolation as matrices, receptive "
        "fields of dilated convolutions, unpooling activations",
        description=(
            "Show a primitive as a matrix product. conv: y = C x with C the convolution matrix; "
            "transposed: x = C^T y (the transposed convolution); interp: Y = W_rows X W_cols^T with "
            "the interpolation weights. Defaults are the lecture's worked example. dilation: the "
            "receptive field 1 + sum (k-1) r_i of stacked dilated convolutions, checked by autograd, "
            "and the fraction of it actually touched (gridding); unpooling: a DeconvNet/SegNet run's "
            "decoder activations per stage, sparse after unpooling, dense after (de)convolution."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "what",
        choices=("conv", "transposed", "interp", "dilation", "unpooling"),
        help="which primitive to explain",
    )
    parser.add_argument(
        "--kernel",
        help="2-D kernel 'a,b,c;d,e,f;...' (default: the lecture's 3x3 kernel); dilation: the kernel "
        "size k (default 3)",
    )
    parser.add_argument(
        "--input",
        help="2-D input 'a,b;c,d' (default: the lecture's 4x4 input; transposed: its 2x2 map '2,1;4,4')",
    )
    parser.add_argument("--stride", type=int, default=1, help="convolution stride (default 1)")
    parser.add_argument("--padding", type=int, default=0, help="zero padding on each side (default 0)")
    parser.add_argument("--dilation", type=int, default=1, help="kernel dilation (default 1)")
    parser.add_argument(
        "--output-size",
        help="transposed only: H,W of the result, when stride > 1 leaves it ambiguous (default: smallest)",
    )
    parser.add_argument(
        "--mode",
        default="bilinear",
        choices=("nearest", "nearest-exact", "linear", "bilinear", "cubic", "bicubic"),
        help="interp only: interpolation kernel (default bilinear)",
    )
    parser.add_argument("--scale", type=float, default=2.0, help="interp only: scale factor (default 2)")
    parser.add_argument("--size", help="interp only: output size H,W (overrides --scale)")
    parser.add_argument(
        "--align-corners",
        action="store_true",
        help="interp only: align corner pixel centres (PyTorch option)",
    )
    parser.add_argument(
        "--cubic-a",
        type=float,
        default=-0.75,
        help="interp only: Keys' cubic coefficient, -0.75 as PyTorch/OpenCV (default) or -0.5 as PIL",
    )
    parser.add_argument(
        "--antialias", action="store_true", help="interp only: PIL-style antialiasing when shrinking"
    )
    parser.add_argument(
        "--rates", default="1,2,4", help="dilation only: the stack's dilation rates (default 1,2,4)"
    )
    parser.add_argument(
        "--run", metavar="RUN_DIR", help="unpooling only: a DeconvNet/SegNet run written by `segscope train`"
    )
    parser.add_argument("--image", type=Path, help="unpooling only: the image to run through it")
    parser.add_argument(
        "--figure",
        type=Path,
        help="also save a figure of the kernels and matrices, the gradient maps (dilation) or the "
        "activations (unpooling) (.png/.pdf/.svg)",
    )
    parser.set_defaults(func=run)


def parse_matrix(text: str, option: str) -> np.ndarray:
    """``"1,2;3,4"`` -> ``[[1, 2], [3, 4]]``; a UserError naming ``option`` when malformed."""
    try:
        rows = [[float(v) for v in row.split(",")] for row in text.strip().split(";") if row.strip()]
    except ValueError:
        raise UserError(f"{option}: {text!r} is not a matrix of numbers like '1,2;3,4'") from None
    if not rows or len({len(r) for r in rows}) != 1:
        raise UserError(f"{option}: {text!r} must have rows of equal length, separated by ';'")
    return np.array(rows)


def format_table(matrix: np.ndarray, title: str, *, row_label: str = "", max_cells: int = 4096) -> str:
    """A titled, right-aligned text table of a 1-D or 2-D array (values shown to 4 decimals)."""
    matrix = np.atleast_2d(matrix)
    if matrix.size > max_cells:
        return f"{title}: {matrix.shape[0]}x{matrix.shape[1]} (too large to print)"
    cells = [[f"{v:.4f}".rstrip("0").rstrip(".") if v != 0 else "0" for v in row] for row in matrix]
    width = max(len(c) for row in cells for c in row)
    label_width = len(f"{row_label}{matrix.shape[0] - 1}") if row_label else 0
    lines = [f"{title} ({matrix.shape[0]}x{matrix.shape[1]}):"]
    for i, row in enumerate(cells):
        label = f"{row_label}{i}".rjust(label_width) + " | " if row_label else "  "
        lines.append(label + " ".join(c.rjust(width) for c in row))
    return "\n".join(lines)


def _pair_option(text: str | None, option: str) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        h, w = (int(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"{option}: expected 'H,W', got {text!r}") from None
    if h < 1 or w < 1:
        raise UserError(f"{option}: sizes must be positive, got {text!r}")
    return h, w


def explain_conv(args: argparse.Namespace) -> tuple[str, dict[str, np.ndarray]]:
    from segscope.ops import LECTURE_INPUT, LECTURE_KERNEL, conv_matrix, conv_output_shape

    kernel = parse_matrix(args.kernel, "--kernel") if args.kernel else LECTURE_KERNEL
    x = parse_matrix(args.input, "--input") if args.input else LECTURE_INPUT
    try:
        out_hw = conv_output_shape(x.shape, kernel.shape, args.stride, args.padding, args.dilation)
        matrix = conv_matrix(kernel, x.shape, args.stride, args.padding, args.dilation, sparse=False)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    y = matrix @ x.ravel()
    text = "\n\n".join(
        [
            f"conv2d (cross-correlation), stride {args.stride}, padding {args.padding}, "
            f"dilation {args.dilation}",
            format_table(kernel, "kernel"),
            format_table(x, "input x"),
            format_table(
                matrix, "convolution matrix C (row = output pixel, column = input pixel)", row_label="y"
            ),
            format_table(y[None], "C @ x.ravel()"),
            format_table(y.reshape(out_hw), "result y = conv2d(x, kernel)"),
        ]
    )
    return text, {"kernel": kernel, "input x": x, "matrix C": matrix, "output y": y.reshape(out_hw)}


def explain_transposed(args: argparse.Namespace) -> tuple[str, dict[str, np.ndarray]]:
    from segscope.ops import LECTURE_KERNEL, LECTURE_TRANSPOSED_INPUT, conv_matrix, conv_output_shape

    kernel = parse_matrix(args.kernel, "--kernel") if args.kernel else LECTURE_KERNEL
    y = parse_matrix(args.input, "--input") if args.input else LECTURE_TRANSPOSED_INPUT
    size = _pair_option(args.output_size, "--output-size")
    if size is None:  # the smallest convolution input that gives y's size
        size = tuple(
            (n - 1) * args.stride - 2 * args.padding + args.dilation * (k - 1) + 1
            for n, k in zip(y.shape, kernel.shape)
        )
    try:
        if (
            min(size) < 1
            or conv_output_shape(size, kernel.shape, args.stride, args.padding, args.dilation) != y.shape
        ):
            raise UserError(f"--output-size {size} does not convolve back to the input's shape {y.shape}")
        matrix = conv_matrix(kernel, size, args.stride, args.padding, args.dilation, sparse=False)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    x = matrix.T @ y.ravel()
    text = "\n\n".join(
        [
            f"conv_transpose2d = C^T, stride {args.stride}, padding {args.padding}, dilation {args.dilation}",
            format_table(kernel, "kernel"),
            format_table(y, "input y"),
            format_table(
                matrix.T, "transposed matrix C^T (row = output pixel, column = input pixel)", row_label="x"
            ),
            format_table(x.reshape(size), "result x = C^T @ y.ravel()"),
        ]
    )
    return text, {"kernel": kernel, "input y": y, "matrix C^T": matrix.T, "output x": x.reshape(size)}


def explain_interp(args: argparse.Namespace) -> tuple[str, dict[str, np.ndarray]]:
    from segscope.ops import LECTURE_INPUT, interpolation_matrix, scaled_size

    x = parse_matrix(args.input, "--input") if args.input else LECTURE_INPUT
    size = _pair_option(args.size, "--size")
    options = dict(
        mode=args.mode, align_corners=args.align_corners, cubic_a=args.cubic_a, antialias=args.antialias
    )
    try:
        if size is None:
            size = (scaled_size(x.shape[0], args.scale), scaled_size(x.shape[1], args.scale))
        rows = interpolation_matrix(x.shape[0], size[0], **options)
        cols = interpolation_matrix(x.shape[1], size[1], **options)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    result = rows @ x @ cols.T
    note = ""
    if args.mode in ("cubic", "bicubic"):
        note = f", Keys a = {args.cubic_a:g} (PyTorch/OpenCV use -0.75, PIL -0.5)"
    text = "\n\n".join(
        [
            f"{args.mode} interpolation {x.shape} -> {size}, align_corners={args.align_corners}, "
            f"antialias={args.antialias}{note}",
            format_table(x, "input X"),
            format_table(rows, "row weights W_r (Y = W_r X W_c^T)", row_label="r"),
            format_table(cols, "column weights W_c", row_label="c"),
            format_table(result, "result Y"),
        ]
    )
    return text, {"input X": x, "row weights W_r": rows, "column weights W_c": cols, "output Y": result}


def save_figure(path: Path, panels: dict[str, np.ndarray], *, title: str, kernel_curves: bool) -> None:
    """One heat-map per panel (plus the 1-D interpolation kernels for ``interp``), Agg backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from segscope.io import atomic_path
    from segscope.ops import kernel

    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("png", "pdf", "svg"):
        raise UserError(f"--figure {path}: use a .png, .pdf or .svg file name")
    count = len(panels) + int(kernel_curves)
    figure = Figure(figsize=(4.2 * count, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, count)
    if kernel_curves:
        t = np.linspace(-2.5, 2.5, 501)
        for mode, a, style in (
            ("nearest", -0.75, ":"),
            ("linear", -0.75, "--"),
            ("cubic", -0.75, "-"),
            ("cubic", -0.5, "-."),
        ):
            label = f"{mode} (a={a:g})" if mode == "cubic" else mode
            axes[0].plot(t, kernel(mode, t, cubic_a=a), style, label=label)
        axes[0].axhline(0, color="grey", lw=0.5)
        axes[0].set_title("1-D kernels k(x)")
        axes[0].set_xlabel("distance in input pixels")
        axes[0].legend(fontsize=8)
    for ax, (name, data) in zip(axes[int(kernel_curves) :], panels.items()):
        data = np.atleast_2d(data)
        image = ax.imshow(data, cmap="viridis", interpolation="nearest")
        ax.set_title(f"{name} {data.shape[0]}x{data.shape[1]}")
        if data.size <= 64:
            for (i, j), v in np.ndenumerate(data):
                bright = image.norm(v) > 0.6  # dark text on the bright end of viridis
                ax.text(j, i, f"{v:.3g}", ha="center", va="center", color="k" if bright else "w", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(title)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=suffix, dpi=100)


def run(args: argparse.Namespace) -> int:
    """Print the requested explanation (and save the figure); returns the exit code."""
    explain = {
        "conv": explain_conv,
        "transposed": explain_transposed,
        "interp": explain_interp,
        "dilation": explain_dilation,
        "unpooling": explain_unpooling,
    }[args.what]
    text, panels = explain(args)
    print(text)
    if args.figure is not None and args.what in ("dilation", "unpooling"):
        save_grid_figure(args.figure, panels, title=text.splitlines()[0], holes=args.what == "dilation")
        print(f"\nfigure written to {args.figure}")
    elif args.figure is not None:
        save_figure(args.figure, panels, title=text.splitlines()[0], kernel_curves=args.what == "interp")
        print(f"\nfigure written to {args.figure}")
    return 0
