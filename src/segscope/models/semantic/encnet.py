"""EncNet: a dilated FCN whose features are re-weighted by a Context Encoding Module, with an SE-loss.

H. Zhang, K. Dana, J. Shi, Z. Zhang, X. Wang, A. Tyagi, A. Agrawal, "Context Encoding for Semantic
Segmentation", CVPR 2018 (arXiv 1803.08904).

Reproduced: the network of Fig. 2 with the layer widths of the authors' PyTorch-Encoding code
(``encoding/models/sseg/encnet.py``). For an ``H x W`` input:

* a ResNet-50/101 dilated in its last two stages (segscope's encoder at ``output_stride=8``) -> 2048
  channels at 1/8;
* the head's 3x3 conv-BN-ReLU 2048 -> 512 (``conv5``);
* the Context Encoding Module: 1x1 conv-BN-ReLU 512 -> 512, the :class:`Encoding` layer (``K = 32``
  codewords of ``D = 512``; :mod:`segscope.models.layers.encoding`), BatchNorm1d over the codewords and
  ReLU, the mean over the ``K`` encoders -> ``e`` ``(N, 512)``; the channel attention
  ``gamma = sigmoid(FC(e))`` re-weights the map;
* dropout 0.1 (``Dropout2d``, as the code), a 1x1 classifier, bilinear up-sampling to ``H x W``;
* the SE-loss head ``FC(e) -> num_classes`` logits, trained with binary cross-entropy against the
  classes present in the target (:func:`segscope.losses.semantic_encoding.semantic_encoding_loss`;
  ignore-index pixels count for no class);
* the auxiliary FCN head on layer3 (``FCNHead(1024, num_classes)``, up-sampled to ``H x W``).

Training (:meth:`EncNet.training_loss`, which :class:`~segscope.models.segmenter.DeepSegmenter` uses when
a model defines it): ``L(main) + aux_weight * L(aux) + se_loss_weight * BCE(se)``, ``L`` being the run's
loss spec (``ce`` by default). Defaults 0.2 and 0.2, those of the authors' training script
(``--aux-weight``, ``--se-weight``; their ``SegmentationLosses`` class itself defaults to 0.4 for the aux
term, as mmsegmentation's EncNet config does). Set them as model options, e.g.
``segscope train ... -o se_loss_weight=0.5 -o aux_weight=0.4`` or, in a bench,
``-o encnet_resnet50.se_loss_weight=0.5``; ``se_loss_weight=0`` drops the SE head, ``aux=False`` the
auxiliary head. Both outputs exist in training forwards only (``aux_logits``, ``se_logits``).

Attention: the paper writes ``Y = X (x) gamma``; the code computes ``relu(X + X * gamma)``. We follow the
code (``residual_attention=True``): it is what produced the released models, and at initialisation
(``gamma`` about 0.5) it keeps the features at 1-2x their value instead of halving every channel, the
identity path carrying the gradient; the ReLU is a no-op on the non-negative ``conv5`` output.
``residual_attention=False`` gives the paper's product.

Results reported: 51.7 % mIoU on PASCAL-Context, 85.9 % on PASCAL VOC 2012, a 0.5567 ADE20K test
score (the abstract); the authors' released PASCAL-Context models score 79.2 % pixAcc / 51.0 % mIoU
(ResNet-50) and 80.7 % / 54.1 % (ResNet-101) with multi-size evaluation (PyTorch-Encoding docs; those
models add lateral connections, see below). We found no parameter count in the paper.

Parameters, measured (``tests/models/test_encnet.py`` checks them against a hand count), for 59 classes
(PASCAL-Context): ``encnet_resnet50`` 35,924,049 = torchvision ResNet-50 without fc 23,508,032 +
``conv5`` 9,438,208 + Context Encoding Module 542,304 (1x1 conv-BN 263,168, codewords and scales
16,416, BatchNorm1d 64, attention FC 262,656) + classifier 30,267 + SE head 30,267 + aux FCN head
2,374,971; ``encnet_resnet101`` 54,916,177 (ResNet-101 without fc 42,500,160 + the same head).

Departures:

* torchvision's ResNet (7x7 stem, ImageNet weights via ``pretrained``) instead of the authors' deep-stem
  ResNet (three 3x3 stem convolutions, their own ImageNet training);
* no lateral connections: the authors' later code fuses layer2/layer3 maps into ``conv5`` for the PASCAL
  datasets (``lateral=True``); their first release had none;
* ``align_corners=False`` bilinear up-sampling (the code: ``True``); BatchNorm instead of SyncBatchNorm;
* the SE-loss from the logits (``binary_cross_entropy_with_logits``), equal to the code's
  ``BCELoss(sigmoid(.))`` but numerically safe; the SE head runs in training forwards only;
* the Encoding layer computes in float32 under autocast (bfloat16 inference included).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segscope.losses.semantic_encoding import semantic_encoding_loss
from segscope.models.encoders.base import Pretrained
from segscope.models.encoders.resnet import ResNetEncoder
from segscope.models.layers.conv import ConvNormAct
from segscope.models.layers.deep_supervision import DeeplySupervised, LossFn
from segscope.models.layers.encoding import Encoding
from segscope.models.layers.heads import FCNHead
from segscope.models.registration import register_variant

PAPER = "Zhang, Dana, Shi, Zhang, Wang, Tyagi, Agrawal. Context Encoding for Semantic Segmentation. CVPR 2018"
SE_LOSS_WEIGHT = 0.2  # the authors' --se-weight default
AUX_WEIGHT = 0.2  # the authors' --aux-weight default
CODEWORDS = 32
HEAD_CHANNELS = 512
IGNORE_INDEX = 255  # DeepSegmenter's FILL_INDEX: ignored pixels count for no class in the SE targets


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ContextEncodingModule(nn.Module):
    """``(N, C, h, w)`` -> the re-weighted map ``(N, C, h, w)`` and the encoding ``e`` ``(N, C)``.

    1x1 conv-BN-ReLU, :class:`Encoding` (``codewords`` x ``C``), BatchNorm1d + ReLU, mean over the
    codewords -> ``e``; ``gamma = sigmoid(fc(e))``; ``relu(x + x * gamma)`` (``residual=True``, the
    authors' code) or ``x * gamma`` (the paper). ``num_classes`` builds the SE head ``se`` (``FC(e)``),
    which the caller applies (training only).
    """

    def __init__(
        self,
        channels: int,
        codewords: int = CODEWORDS,
        *,
        num_classes: int | None = None,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.project = ConvNormAct(channels, channels, 1)
        self.encoding = Encoding(channels, codewords)
        self.norm = nn.BatchNorm1d(codewords)
        self.fc = nn.Linear(channels, channels)
        self.se = nn.Linear(channels, num_classes) if num_classes else None
        self.residual = residual

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The global context ``e`` ``(N, C)`` of the map ``x``."""
        return F.relu(self.norm(self.encoding(self.project(x)))).mean(1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.encode(x)
        gamma = torch.sigmoid(self.fc(e)).to(x.dtype)[:, :, None, None]
        y = F.relu(x + x * gamma) if self.residual else x * gamma
        return y, e


class EncNet(DeeplySupervised):
    """EncNet over a dilated torchvision ResNet (module docstring): ``(N, C_in, H, W) -> (N, K, H, W)``.

    Parameters
    ----------
    num_classes, in_channels : int
    arch : {"resnet50", "resnet101", "resnet152"}
    pretrained : bool | str | Path
        ImageNet (or file) weights of the ResNet, see :mod:`segscope.models.encoders.base`.
    codewords : int
        ``K`` of the Encoding layer (32).
    se_loss_weight : float
        Weight of the SE-loss in :meth:`training_loss` (0.2); 0 drops the SE head.
    aux : bool
        Build the auxiliary FCN head on layer3 (on by default, as the authors train EncNet).
    aux_weight : float
        Its loss weight (0.2).
    residual_attention : bool
        ``relu(x + x * gamma)`` (the code, default) or ``x * gamma`` (the paper).
    """

    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        arch: str = "resnet50",
        pretrained: Pretrained = False,
        codewords: int = CODEWORDS,
        se_loss_weight: float = SE_LOSS_WEIGHT,
        aux: bool = True,
        aux_weight: float = AUX_WEIGHT,
        residual_attention: bool = True,
    ) -> None:
        super().__init__()
        if int(codewords) < 1:
            raise ValueError(f"codewords must be >= 1, got {codewords}")
        if not float(se_loss_weight) >= 0 or not float(aux_weight) >= 0:
            raise ValueError(
                f"loss weights must be >= 0, got se_loss_weight={se_loss_weight}, aux_weight={aux_weight}"
            )
        self.encoder = ResNetEncoder(arch, in_channels=in_channels, output_stride=8, pretrained=pretrained)
        c3, c4 = self.encoder.out_channels[3:]
        self.head = ConvNormAct(c4, HEAD_CHANNELS, 3)  # conv5
        self.context = ContextEncodingModule(
            HEAD_CHANNELS,
            int(codewords),
            num_classes=num_classes if float(se_loss_weight) > 0 else None,
            residual=residual_attention,
        )
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(HEAD_CHANNELS, num_classes, 1)
        self.aux_head = FCNHead(c3, num_classes) if aux else None
        self.num_classes = num_classes
        self.se_loss_weight = float(se_loss_weight)
        self.aux_weights = (float(aux_weight),) if aux else ()
        self.se_logits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        feats = self.encoder(x)  # [stem, layer1 .. layer4], layer3/4 at 1/8
        y, e = self.context(self.head(feats[4]))
        logits = _resize(self.classifier(self.dropout(y)), size)
        training = self.training
        self.aux_logits = (
            (_resize(self.aux_head(feats[3]), size),) if training and self.aux_head is not None else None
        )
        self.se_logits = self.context.se(e) if training and self.context.se is not None else None
        return logits

    def training_loss(self, loss_fn: LossFn, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``L(main) + aux_weight * L(aux) + se_loss_weight * BCE(se)`` of the last training forward."""
        total = super().training_loss(loss_fn, logits, target)
        if self.se_logits is not None and self.se_loss_weight > 0:
            se = semantic_encoding_loss(self.se_logits, target, self.num_classes, self.ignore_index)
            total = total + self.se_loss_weight * se
        return total

    def train(self, mode: bool = True):
        self.se_logits = None  # no training graph kept (nor deep-copied) past training
        return super().train(mode)


_OPTIONS = "options: pretrained, codewords, se_loss_weight, aux, aux_weight, residual_attention."
register_variant(
    "encnet_resnet50",
    EncNet,
    paper=PAPER,
    doc=f"EncNet (Zhang et al. CVPR 2018) on a dilated ResNet-50; {_OPTIONS}",
    arch="resnet50",
)
register_variant(
    "encnet_resnet101",
    EncNet,
    paper=PAPER,
    doc=f"EncNet (Zhang et al. CVPR 2018) on a dilated ResNet-101; {_OPTIONS}",
    arch="resnet101",
)
