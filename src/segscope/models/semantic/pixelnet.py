"""PixelNet: hypercolumns from six VGG16 layers and a per-pixel MLP, trained on sparsely sampled pixels.

A. Bansal, X. Chen, B. Russell, A. Gupta, D. Ramanan, "PixelNet: Representation of the pixels, by the
pixels, and for the pixels", arXiv 1702.06506, 2017.

Reproduced: the architecture of Fig. 2 / Sec. 3 in the authors' released Caffe layout
(``models/analysis/mlp/semantic_seg`` of aayushbansal/PixelNet):

* VGG16's 13 convolutions, then fc6 (7x7, 4096, padded by 3) and fc7 (1x1, 4096) as convolutions with
  ReLU + dropout 0.5 (``pretrained`` loads ImageNet VGG16 including fc6/fc7, as FCN does);
* the hypercolumn of a pixel: the values of conv1_2, conv2_2, conv3_3, conv4_3, conv5_3 and fc7 (after their
  ReLU; strides 1, 2, 4, 8, 16, 32), each bilinearly interpolated at the pixel - a map of stride ``s`` holds
  at index ``j`` the input pixels ``s j .. s j + s - 1``, centre ``s j + (s - 1) / 2``, so pixel ``x`` reads
  the map at ``(x + 0.5) / s - 0.5`` (clamped at the borders): :func:`sample_features`;
* the MLP on the hypercolumn (64 + 128 + 256 + 512 + 512 + 4096 = 5,568 values): fully connected layers
  with ReLU and dropout 0.5, then the classifier, written as 1x1 convolutions;
* sparse sampling in training: ``sample_pixels`` (the paper's 2,000) pixels per image, drawn uniformly
  without replacement; only their hypercolumns are interpolated and only they go through the MLP.

Dense prediction (eval mode, or ``sample_pixels=0``) gives exactly the same logits, computed cheaper:
bilinear interpolation and the MLP's first layer are both linear, so the first layer is applied to each
layer's map at its own resolution (``W_1 f = sum_l W_1^l f_l``) and the projected maps are interpolated
and summed, never building the 5,568-channel hypercolumn at full resolution; the rest of the MLP runs on
row bands of at most ``chunk_pixels`` pixels.

Training with segscope's trainer (``loss_fn(model(x), y)`` on dense ``(N, K, H, W)`` logits): a training
forward returns the sampled pixels' logits scattered into a zero tensor and leaves the boolean
``(N, H, W)`` mask of sampled pixels in ``model.last_sample_mask``. segscope's losses ignore pixels by
*target* value (``ignore_index``, 255 in the trainer) and the trainer has no hook to edit targets, so
the loss also sees the zero logits of the non-sampled pixels. What that does, honestly:

* ``ce`` (and ``focal``): every non-sampled pixel adds the constant ``log K`` (``focal``: a constant too)
  and no gradient, so the parameters receive exactly the gradient of the sampled pixels' loss, scaled by
  ``sampled / labelled`` pixels (2,000 / 42,240 = 0.047 at 176x240). AdamW (segscope's default) is
  invariant to that constant scale (up to its epsilon); SGD needs a learning rate larger by its inverse.
  The logged ``train_loss`` is inflated by about ``(1 - sampled / labelled) log K``; validation runs in
  eval mode, densely, and is unaffected;
* region losses (``dice``, ``lovasz``, ``tversky``, ``gdice``) and ``ohem`` are biased by the uniform
  softmax of the zero logits: use ``ce``/``focal`` with sampling, or ``sample_pixels=0``;
* a custom loop gets the paper's loss exactly:
  ``loss_fn(out, sampled_target(y, model.last_sample_mask))``.

Measured saving (``benchmarks/pixelnet_sampling.py``, one training step at 1 x 3 x 176 x 240, 2 CPU threads,
this default model): 2,000 sampled pixels against all 42,240 hypercolumns through the MLP take 5.9x less
time (6.5 s vs 38.4 s) and save 12.7x fewer activation bytes for backward (154 MB vs 1,954 MB); against the
factorised dense path 2.9x and 7.2x. The shared VGG16 trunk (5.0 s, 61 MB) bounds the whole-step gain.

Parameters: 21 classes, the paper's MLP (4096, 4096): 173,938,517 = VGG16 convolutions 14,714,688 + fc6
102,764,544 + fc7 16,781,312 + MLP 22,810,624 + 16,781,312 + classifier 86,037. The default MLP (1024, 1024):
141,034,325 (``tests/models/test_pixelnet.py`` checks both by hand). We found no parameter count in the paper.

Departures:

* MLP width 1024 by default instead of 4096 (``mlp_channels=(4096, 4096)`` is the paper's): a 360x480
  prediction costs about 6x fewer multiply-adds per pixel on a CPU; ``width < 1`` also shrinks VGG16 and
  fc6/fc7 (such variants cannot load ImageNet weights);
* the authors sample among *labelled* pixels only (``label < 255``); the model cannot see the labels, so
  samples that land on ignored pixels are wasted (their logits are in the output, their loss is ignored);
* "same" padding (conv1_1 padded by 1, fc6 by 3) instead of Caffe's 100-pixel input padding, so every
  map is aligned with the input as above and any size of at least 32x32 works.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segscope.models.encoders.base import Pretrained, backbone_state_dict, check_pretrained_width, load_into
from segscope.models.encoders.vgg import VGGEncoder, scale_channels
from segscope.models.registration import register_model
from segscope.models.semantic.fcn import vgg_fully_connected

PAPER = (
    "Bansal, Chen, Russell, Gupta, Ramanan. PixelNet: Representation of the pixels, by the pixels, "
    "and for the pixels. arXiv 1702.06506, 2017"
)
SAMPLE_PIXELS = 2000  # per image, the paper's
TAP_STRIDES = (1, 2, 4, 8, 16, 32)  # conv1_2, conv2_2, conv3_3, conv4_3, conv5_3, fc7
MIN_SIZE = 32  # pool5 (and so fc7) needs at least 32x32 input pixels


def sample_features(feature: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, stride: int) -> torch.Tensor:
    """Bilinear values of a stride-``stride`` map ``(N, C, h, w)`` at input pixels ``(ys, xs)``.

    ``ys``/``xs`` are ``(N, A, B)`` integer (or float) input coordinates; returns ``(N, C, A, B)``. Pixel
    ``x`` reads the map at ``(x + 0.5) / stride - 0.5``, clamped to the map (``F.interpolate``'s
    ``align_corners=False`` geometry, for any map size).
    """
    h, w = feature.shape[-2:]
    gx = (2 * xs.float() + 1) / (stride * w) - 1  # grid_sample's normalised coordinate of that position
    gy = (2 * ys.float() + 1) / (stride * h) - 1
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(feature.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def sampled_target(target: torch.Tensor, mask: torch.Tensor | None, ignore_index: int = 255) -> torch.Tensor:
    """``target`` with the pixels a training forward did not sample set to ``ignore_index``."""
    return target if mask is None else target.masked_fill(~mask, ignore_index)


class PixelNet(nn.Module):
    """PixelNet on VGG16 (module docstring): ``(N, C_in, H, W) -> (N, K, H, W)`` logits.

    Parameters
    ----------
    num_classes, in_channels : int
    width : float
        Channel multiplier of VGG16 and fc6/fc7 (1.0 = the paper's).
    fc_channels : int
        fc6/fc7 width before ``width`` scaling (4096).
    mlp_channels : sequence of int
        Hidden widths of the MLP (paper: 4096, 4096; default 1024, 1024; ``()`` = a linear classifier).
    dropout : float
        After every hidden MLP layer (0.5).
    sample_pixels : int
        Pixels per image in a training forward (2,000); 0 trains densely.
    chunk_pixels : int
        Pixels per row band of a dense forward (memory bound only).
    pretrained : bool | str | Path
        ImageNet VGG16 (convolutions + fc6/fc7), see :mod:`segscope.models.encoders.base`.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        width: float = 1.0,
        fc_channels: int = 4096,
        mlp_channels: Sequence[int] = (1024, 1024),
        dropout: float = 0.5,
        sample_pixels: int = SAMPLE_PIXELS,
        chunk_pixels: int = 65536,
        pretrained: Pretrained = False,
    ) -> None:
        super().__init__()
        if sample_pixels < 0 or chunk_pixels < 1:
            raise ValueError(
                f"sample_pixels must be >= 0 and chunk_pixels >= 1, got {sample_pixels}, {chunk_pixels}"
            )
        check_pretrained_width(pretrained, width)
        self.encoder = VGGEncoder(in_channels=in_channels, width=width)
        fc = scale_channels(fc_channels, width)
        self.fully_connected = vgg_fully_connected(self.encoder.out_channels[-1], fc, padding=3)
        self.tap_channels = (*self.encoder.out_channels, fc)
        layers: list[nn.Module] = []
        previous = sum(self.tap_channels)
        for channels in mlp_channels:
            layers += [nn.Conv2d(previous, int(channels), 1), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            previous = int(channels)
        layers.append(nn.Conv2d(previous, num_classes, 1))
        self.mlp = nn.Sequential(*layers)
        self.num_classes = num_classes
        self.sample_pixels = int(sample_pixels)
        self.chunk_pixels = int(chunk_pixels)
        self.last_sample_mask: torch.Tensor | None = None
        state = backbone_state_dict("vgg16", pretrained)
        if state is not None:
            if fc != 4096:
                raise ValueError(f"ImageNet fc6/fc7 weights need fc_channels=4096, got {fc}")
            self.encoder.load_torchvision_state(state, source=str(pretrained))
            fc_state = {
                "fc6.weight": state["classifier.0.weight"].reshape(fc, self.encoder.out_channels[-1], 7, 7),
                "fc6.bias": state["classifier.0.bias"],
                "fc7.weight": state["classifier.3.weight"][..., None, None],
                "fc7.bias": state["classifier.3.bias"],
            }
            load_into(self.fully_connected, fc_state, source=str(pretrained))

    def layer_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """conv1_2, conv2_2, conv3_3, conv4_3, conv5_3 (after ReLU) and fc7: strides 1 .. 32."""
        maps = []
        for layer in self.encoder.features:
            if isinstance(layer, nn.MaxPool2d):
                maps.append(x)  # the last conv (+ ReLU) of the stage, before its pooling
            x = layer(x)
        maps.append(self.fully_connected(x))
        return maps

    def hypercolumns(self, maps: list[torch.Tensor], ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """``(N, sum(tap_channels), A, B)`` hypercolumns at the input pixels ``(ys, xs)`` (``(N, A, B)``)."""
        return torch.cat([sample_features(m, ys, xs, s) for m, s in zip(maps, TAP_STRIDES)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if h < MIN_SIZE or w < MIN_SIZE:
            raise ValueError(
                f"PixelNet needs an input size of at least {MIN_SIZE}x{MIN_SIZE} (VGG16's pool5), got {h}x{w}"
            )
        maps = self.layer_maps(x)
        self.last_sample_mask = None
        if self.training and self.sample_pixels:
            return self._sampled(maps, n, h, w)
        return self._dense(maps, n, h, w)

    def _sampled(self, maps: list[torch.Tensor], n: int, h: int, w: int) -> torch.Tensor:
        """MLP on ``sample_pixels`` random pixels per image; their logits scattered into zeros."""
        device = maps[0].device
        k = min(self.sample_pixels, h * w)
        index = torch.stack([torch.randperm(h * w, device=device)[:k] for _ in range(n)])  # (N, k)
        ys, xs = (index // w)[:, None], (index % w)[:, None]  # (N, 1, k)
        points = self.mlp(self.hypercolumns(maps, ys, xs))[:, :, 0]  # (N, K, k)
        scatter_index = index[:, None].expand(-1, self.num_classes, -1)
        logits = points.new_zeros(n, self.num_classes, h * w).scatter(2, scatter_index, points)
        mask = torch.zeros(n, h * w, dtype=torch.bool, device=device).scatter_(1, index, True)
        self.last_sample_mask = mask.view(n, h, w)
        return logits.view(n, self.num_classes, h, w)

    def _dense(self, maps: list[torch.Tensor], n: int, h: int, w: int) -> torch.Tensor:
        """Every pixel: the first MLP layer per map at its own resolution, then interpolate and sum."""
        first = self.mlp[0]
        weights = first.weight.split(self.tap_channels, dim=1)
        projected = [F.conv2d(m, weight) for m, weight in zip(maps, weights)]  # (N, M, h_l, w_l)
        rows = max(1, self.chunk_pixels // w)
        columns = torch.arange(w, device=maps[0].device)
        bands = []
        for top in range(0, h, rows):
            band = torch.arange(top, min(h, top + rows), device=columns.device)
            ys = band.view(1, -1, 1).expand(n, -1, w)
            xs = columns.view(1, 1, -1).expand(n, len(band), -1)
            z = first.bias.view(1, -1, 1, 1).float()
            for p, stride in zip(projected, TAP_STRIDES):
                if stride == 1 and p.shape[-2:] == (h, w):
                    z = z + p[..., top : top + len(band), :].float()  # stride 1: the map itself
                else:
                    z = z + sample_features(p, ys, xs, stride)
            bands.append(self.mlp[1:](z))
        return torch.cat(bands, dim=2)


@register_model("pixelnet_vgg16", paper=PAPER)
def pixelnet_vgg16(num_classes: int = 2, in_channels: int = 3, **options) -> PixelNet:
    """PixelNet (Bansal et al. 2017) on VGG16; options: pretrained, width, fc_channels, mlp_channels,
    dropout, sample_pixels (2,000 per image in training; 0 = dense), chunk_pixels."""
    return PixelNet(num_classes, in_channels, **options)
