"""Small classification heads shared by several architectures."""

from __future__ import annotations

from torch import nn


class FCNHead(nn.Sequential):
    """``3x3 conv (in -> in/4, no bias) -> BN -> ReLU -> dropout -> 1x1 conv (-> num_classes)``.

    The "FCN head" of torchvision's ``fcn_resnet50`` and of the auxiliary classifiers of PSPNet (Zhao et al.
    CVPR 2017, Sec. 3.3: the stage-3 "auxiliary loss"), DeepLab v3 (torchvision) and EncNet; children
    ``0`` .. ``4`` as torchvision's ``FCNHead``, so its state dict loads unchanged. ``dropout`` 0.1 as in
    torchvision and the PSPNet code.
    """

    def __init__(
        self, in_channels: int, num_classes: int, *, mid_channels: int | None = None, dropout: float = 0.1
    ) -> None:
        mid = mid_channels or in_channels // 4
        super().__init__(
            nn.Conv2d(in_channels, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(mid, num_classes, 1),
        )
