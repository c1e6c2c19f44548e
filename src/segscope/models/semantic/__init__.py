"""Semantic segmentation architectures, one module per paper."""

import importlib

for _name in (
    "unet",
    "unet_resnet",
    "unet_efficientnet_lite",
    "fcn",
    "segnet",
    "deconvnet",
    "enet",
    "reseg",
    "icnet",
    "pixelnet",
):
    try:
        importlib.import_module(f"segscope.models.semantic.{_name}")
    except ModuleNotFoundError as exc:  # a module still being written must not break the others
        if exc.name != f"segscope.models.semantic.{_name}":
            raise
