"""Teaching primitives: convolution as a matrix, transposed convolution, interpolation kernels.

Everything here is written out by hand so that the numbers can be read; each function is tested
against :func:`torch.nn.functional.conv2d`, ``conv_transpose2d``, ``interpolate``, OpenCV and PIL.
See ``docs/primitives.md`` and ``segscope explain``.
"""

from segscope.ops.conv_matrix import (
    LECTURE_CONV_OUTPUT,
    LECTURE_INPUT,
    LECTURE_KERNEL,
    LECTURE_TRANSPOSED_INPUT,
    LECTURE_TRANSPOSED_OUTPUT,
    conv_matrix,
    conv_output_shape,
    convolve,
    transposed_convolve,
    transposed_output_padding,
)
from segscope.ops.interpolation import (
    CUBIC_A_PIL,
    CUBIC_A_PYTORCH,
    interpolation_matrix,
    kernel,
    kernel_2d,
    resize,
    scaled_size,
    source_coordinates,
)
from segscope.ops.upsampling import bilinear_kernel, bilinear_transposed_conv, bilinear_weight

__all__ = [
    "CUBIC_A_PIL",
    "CUBIC_A_PYTORCH",
    "LECTURE_CONV_OUTPUT",
    "LECTURE_INPUT",
    "LECTURE_KERNEL",
    "LECTURE_TRANSPOSED_INPUT",
    "LECTURE_TRANSPOSED_OUTPUT",
    "bilinear_kernel",
    "bilinear_transposed_conv",
    "bilinear_weight",
    "conv_matrix",
    "conv_output_shape",
    "convolve",
    "interpolation_matrix",
    "kernel",
    "kernel_2d",
    "resize",
    "scaled_size",
    "source_coordinates",
    "transposed_convolve",
    "transposed_output_padding",
]
