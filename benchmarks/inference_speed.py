"""CPU inference latency: segscope vs segmentation-models-pytorch eager, same architecture, same weights.

``unet_resnet18`` has SMP ``Unet('resnet18')``'s exact module layout, so SMP's weights load into it and
both compute the same function. The script times one 3x360x480 image (median of ``--repeats`` after
warm-up) for SMP eager fp32 (the peer as users run it), segscope fp32 (BatchNorm folded, channels-last)
and segscope bf16 (the same plus bf16 autocast), prints the speed-up ratios measured in this one run,
and the agreement of the arg-max maps with the peer's.

    python benchmarks/inference_speed.py [--repeats 15] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch


def main() -> None:
    import segmentation_models_pytorch as smp
    from timing import median_ms

    from segscope import create_model
    from segscope.inference import InferenceModel

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", default="360x480")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    h, w = map(int, args.size.split("x"))
    peer = smp.Unet("resnet18", encoder_weights=None, classes=11).eval()
    with torch.no_grad():  # realistic BatchNorm statistics instead of the identity init
        for m in peer.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    ours = create_model("unet_resnet18", num_classes=11).eval()
    ours.load_state_dict(peer.state_dict())
    x = torch.randn(1, 3, h, w)
    fp32, bf16 = InferenceModel(ours), InferenceModel(ours, dtype=torch.bfloat16)
    t_peer = median_ms(peer, x, args.repeats, warmup=3)
    t_fp32 = median_ms(fp32, x, args.repeats, warmup=3)
    t_bf16 = median_ms(bf16, x, args.repeats, warmup=3)
    with torch.inference_mode():
        ref = peer(x).argmax(1)
        agree32 = (fp32(x).argmax(1) == ref).float().mean().item()
        agree16 = (bf16(x).argmax(1) == ref).float().mean().item()
    print(f"Unet-ResNet18, 1x3x{h}x{w}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'variant':<34}{'ms/image':>10}{'speed-up':>10}{'argmax = peer':>15}")
    print(f"{'smp.Unet eager fp32 (peer)':<34}{t_peer:>10.1f}{1.0:>10.2f}{1.0:>15.4f}")
    print(f"{'segscope fp32 (BN folded, NHWC)':<34}{t_fp32:>10.1f}{t_peer / t_fp32:>10.2f}{agree32:>15.4f}")
    print(f"{'segscope bf16 (BN folded, NHWC)':<34}{t_bf16:>10.1f}{t_peer / t_bf16:>10.2f}{agree16:>15.4f}")


if __name__ == "__main__":
    main()
