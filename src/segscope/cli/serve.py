"""``segscope serve``: a local web page to segment, compare and refine an image (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
import sys

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
EXAMPLES = """examples:
  segscope serve                                      classical methods only
  segscope serve demo_out/cells/unet_small/holdout    plus the demo's trained U-Net
  segscope serve runs/unet --oracle oracles/isbi      plus predicted quality and refinement"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="a local web page to segment, compare and refine an image",
        description="Serve a page (http://HOST:PORT/) on which an image is dropped, methods picked and their "
        "masks compared side by side: the trained runs given, and every classical method that needs no "
        "training. Boxes and seed points drawn on the image prompt GrabCut, graph cut and random walker. "
        "Needs the web extra: pip install 'segscope[web]'.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="*", metavar="RUN_DIR", help="run directories (segscope train / bench)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--oracle", metavar="ORACLE_DIR", help="quality oracle (segscope refine train)")
    p.add_argument(
        "--classical",
        default="all",
        metavar="NAMES",
        help="classical methods offered: all (default), none, or a comma-separated list",
    )
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload (default 20 MB)")
    p.add_argument("--max-megapixels", type=float, default=40.0, help="largest image (default 40 MP)")
    p.add_argument("--job-timeout", type=float, default=300.0, help="seconds a job may take (default 300)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segscope.errors import UserError

    try:
        import uvicorn

        from segscope.serve import MethodCatalogue, create_app
    except ModuleNotFoundError as exc:
        raise UserError(
            f"segscope serve needs the web extra ({exc.name} is missing): pip install 'segscope[web]'"
        ) from None
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be in 1..65535, got {args.port}")
    for name, value in (("--max-upload-mb", args.max_upload_mb), ("--max-megapixels", args.max_megapixels),
                        ("--job-timeout", args.job_timeout)):  # fmt: skip
        if value <= 0:
            raise UserError(f"{name} must be positive, got {value}")
    classical: bool | list[str] = {"all": True, "none": False}.get(
        args.classical, [n.strip() for n in args.classical.split(",") if n.strip()]
    )
    catalogue = MethodCatalogue(args.runs, classical=classical)
    if not catalogue.methods:
        raise UserError("nothing to serve: give a run directory or keep the classical methods")
    oracle = None
    if args.oracle:
        from segscope.oracle import load_any_oracle

        oracle = load_any_oracle(args.oracle)
    app = create_app(
        catalogue,
        oracle=oracle,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=int(args.max_megapixels * 1e6),
        job_timeout_s=args.job_timeout,
    )
    if args.host not in LOCAL_HOSTS:
        print(
            f"segscope: warning: binding to {args.host} makes the page reachable from other machines; "
            "it has no authentication",
            file=sys.stderr,
        )
    print(
        f"segscope serve: {len(catalogue.methods)} methods at http://{args.host}:{args.port}/ (Ctrl+C stops)"
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_keep_alive=5)
    return 0
