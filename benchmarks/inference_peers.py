"""CPU inference against the same architectures in SMP and torchvision, same weights, same precision.

For each pair the peer's weights are loaded into segscope's model (a documented key map), so both compute
one function; the script checks that (max abs diff of the logits) and times one image, median of
``--repeats`` after warm-up, at each ``--sizes``:

* peer eager fp32 (as users run it) against segscope fp32 - the PyTorch fast path (BatchNorm folded,
  channels-last, ``inference_mode``) and ONNX Runtime on the exported file (``segscope export``);
  "rel diff" is the largest absolute difference of any of segscope's paths (compiled too) to the peer's
  logits, over the peer's largest absolute logit;
* segscope fp32 compiled (``-o inference_compile=true``: ``torch.compile`` with freezing on the folded,
  channels-last model); its one-off compile time per input size is printed in the last column;
* peer eager under bf16 autocast against segscope's bf16 fast path (reported separately: bf16 changes the
  logits by rounding, so it is not the same precision);
* "ceiling": how much faster than the peer any fp32 implementation doing the same convolutions could be,
  measured in this run (``conv_ceiling.py``: the machine's fp32 convolution peak over the peer's achieved
  convolution rate).

Pairs: U-Net-ResNet34 and DeepLabV3+-ResNet50 against segmentation_models_pytorch; DeepLabV3-ResNet50 and
FCN-ResNet50 against torchvision. PSPNet has no peer of the same architecture (SMP's PSPNet pools layer2
with a different head), so it is not timed here.

    python benchmarks/inference_peers.py [--repeats 5] [--threads 2] [--sizes 512x512,352x480]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from conv_ceiling import conv_gmacs, conv_peak
from timing import Logits, median_ms

from segscope.factory import create_model
from segscope.inference import InferenceModel
from segscope.models.semantic import deeplab_v3, deeplab_v3plus, fcn_dilated

NUM_CLASSES = 11


def randomise_batchnorm(model: torch.nn.Module) -> None:
    with torch.no_grad():  # realistic statistics instead of the identity initialisation
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)


def pairs():
    """``(label, peer module, segscope module with the peer's weights)``."""
    import segmentation_models_pytorch as smp
    import torchvision

    seg = torchvision.models.segmentation
    peer = smp.Unet("resnet34", encoder_weights=None, classes=NUM_CLASSES)
    ours = create_model("unet_resnet34", num_classes=NUM_CLASSES)
    yield "U-Net-ResNet34 vs smp.Unet", peer, ours, peer.state_dict()
    peer = smp.DeepLabV3Plus(
        "resnet50", encoder_weights=None, classes=NUM_CLASSES, decoder_atrous_rates=(6, 12, 18)
    )
    ours = create_model("deeplabv3plus_resnet50", num_classes=NUM_CLASSES, decoder_convs=1, aspp_conv=True)
    first = ours.encoder.layer4[0].conv2  # SMP dilates layer4's first block too (see deeplab_v3plus.py)
    first.dilation, first.padding = (2, 2), (2, 2)
    yield "DeepLabV3+-ResNet50 vs smp", peer, ours, deeplab_v3plus.from_smp_state(peer.state_dict())
    peer = seg.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=NUM_CLASSES)
    ours = create_model(
        "deeplabv3_resnet50",
        num_classes=NUM_CLASSES,
        output_stride=8,
        rates=[12, 24, 36],
        multi_grid=None,
        head_conv=True,
    )
    yield (
        "DeepLabV3-ResNet50 vs torchvision",
        peer,
        ours,
        deeplab_v3.from_torchvision_state(peer.state_dict()),
    )
    peer = seg.fcn_resnet50(weights=None, weights_backbone=None, num_classes=NUM_CLASSES)
    ours = create_model("fcn_resnet50", num_classes=NUM_CLASSES)
    yield "FCN-ResNet50 vs torchvision", peer, ours, fcn_dilated.from_torchvision_state(peer.state_dict())


def main() -> None:
    from segscope.inference.onnx_export import OnnxRuntimeModel, export_onnx

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="512x512,352x480")  # multiples of 32: U-Net pads other sizes, SMP not
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    peak = conv_peak(args.repeats)
    print(f"{args.threads} threads, median of {args.repeats}; ratio = peer time / segscope time")
    print(f"fp32 convolution peak of this machine (conv_ceiling.py): {peak:.0f} GMAC/s")
    print(
        f"{'pair':<36}{'size':>9}{'rel diff':>10}{'peer fp32':>10}{'ours fp32':>10}{'x':>6}{'ours ORT':>10}"
        f"{'x':>6}{'compiled':>10}{'x':>6}{'peer bf16':>10}{'ours bf16':>10}{'x':>6}{'compile s':>10}"
        f"{'ceiling x':>10}"
    )
    for label, peer, ours, state in pairs():
        torch.manual_seed(0)
        randomise_batchnorm(peer)
        peer = Logits(peer.eval())
        ours.load_state_dict(state)
        ours.eval()
        fast32, fast16 = InferenceModel(ours), InferenceModel(ours, dtype=torch.bfloat16)
        for h, w in sizes:
            x = torch.randn(1, 3, h, w)
            compiled = InferenceModel(ours, compile=True)
            t0 = time.perf_counter()
            compiled(x)
            compile_s = time.perf_counter() - t0
            with tempfile.TemporaryDirectory() as tmp:
                export_onnx(ours, Path(tmp) / "m.onnx", in_channels=3, size=(h, w))
                ort = OnnxRuntimeModel(Path(tmp) / "m.onnx", threads=args.threads)
                with torch.inference_mode():
                    ref = peer(x)
                    scale = float(ref.abs().max())
                    diff = max(float((m(x) - ref).abs().max()) for m in (fast32, ort, compiled)) / scale
                t = (
                    median_ms(peer, x, args.repeats, warmup=2),
                    median_ms(fast32, x, args.repeats, warmup=2),
                    median_ms(ort, x, args.repeats, warmup=2),
                    median_ms(compiled, x, args.repeats, warmup=1),
                    median_ms(peer, x, args.repeats, warmup=2, autocast=True),
                    median_ms(fast16, x, args.repeats, warmup=2),
                )
            print(
                f"{label:<36}{f'{h}x{w}':>9}{diff:>10.1e}{t[0]:>10.1f}{t[1]:>10.1f}{t[0] / t[1]:>6.2f}"
                f"{t[2]:>10.1f}{t[0] / t[2]:>6.2f}{t[3]:>10.1f}{t[0] / t[3]:>6.2f}"
                f"{t[4]:>10.1f}{t[5]:>10.1f}{t[4] / t[5]:>6.2f}{compile_s:>10.0f}"
                f"{peak * t[0] / 1000 / conv_gmacs(peer, (1, 3, h, w)):>10.2f}"
            )


if __name__ == "__main__":
    main()
