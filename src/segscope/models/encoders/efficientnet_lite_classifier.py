"""The whole EfficientNet-Lite ImageNet classifier around :class:`EfficientNetLiteEncoder`: for the fidelity
checks against reference implementations and for parameter counts (segmentation uses the encoder only)."""

from __future__ import annotations

import torch
from torch import nn

from segscope.models.encoders.base import Pretrained, load_into
from segscope.models.encoders.efficientnet_lite import (
    HEAD_CHANNELS,
    LITE_PARAMS,
    EfficientNetLiteEncoder,
    conv_bn,
    convert_efficientnet_pytorch_state,
    lite_state_dict,
)


class EfficientNetLite(nn.Module):
    """The whole ImageNet classifier: encoder, 1x1 head to 1280 channels (BN, ReLU6), global average
    pooling, dropout and a linear layer. For checks against the reference (and parameter counts)."""

    def __init__(
        self, arch: str = "efficientnet_lite0", *, num_classes: int = 1000, pretrained: Pretrained = False
    ) -> None:
        super().__init__()
        self.encoder = EfficientNetLiteEncoder(arch)
        self.head = conv_bn(self.encoder.out_channels[-1], HEAD_CHANNELS, 1)
        self.dropout = nn.Dropout(LITE_PARAMS[arch][3])
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)
        self.input_mean, self.input_std = self.encoder.input_mean, self.encoder.input_std
        state = lite_state_dict(arch, pretrained)
        if state is not None:
            if any(k.startswith("_blocks.") for k in state):
                state = convert_efficientnet_pytorch_state(state, arch)
            load_into(
                self,
                {f"encoder.{k}" if k.startswith(("stem.", "stages.")) else k: v for k, v in state.items()},
                source=str(pretrained),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.encoder(x)[-1]).mean((-2, -1))
        return self.classifier(self.dropout(y))
