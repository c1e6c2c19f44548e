"""Semantic segmentation architectures, one module per paper."""

import importlib

for _name in (
    "unet",
    "unet_resnet",
    "unet_efficientnet_lite",
    "fcn",
    "fcn_dilated",
    "segnet",
    "deconvnet",
    "enet",
    "reseg",
    "icnet",
    "pixelnet",
    "deeplab_v1",
    "deeplab_v2",
    "deeplab_v3",
    "deeplab_v3plus",
    "pspnet",
    "parsenet",
    "encnet",
):
    try:
        importlib.import_module(f"segscope.models.semantic.{_name}")
    except ModuleNotFoundError as exc:  # a module still being written must not break the others
        if exc.name != f"segscope.models.semantic.{_name}":
            raise
