"""Building blocks shared by the backbones and heads (MobileNets paper, Sec. 3.1 and Fig. 3).

``ConvBNAct`` is a bias-free convolution followed by BatchNorm and an activation, the unit every
MobileNet layer is made of. Padding is either PyTorch's usual symmetric padding or TensorFlow's 'SAME'
padding, which differs for strided convolutions on even-sized inputs and is required to reproduce the
outputs of weights trained in TensorFlow.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PADDINGS = ("symmetric", "tf")
TF_BN_EPS = 1e-3
TF_BN_MOMENTUM = 1.0 - 0.9997  # TF's decay 0.9997 is PyTorch's momentum 0.0003.


def tf_same_padding(size: int, *, kernel_size: int, stride: int, dilation: int) -> tuple[int, int]:
    """Padding (before, after) that TF's 'SAME' applies along one spatial dimension."""
    effective_kernel = (kernel_size - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective_kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dTFSame(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding computed from the input size at run time.

    Only strided convolutions need this: for stride 1 and an odd kernel 'SAME' is symmetric, and
    ``ConvBNAct`` uses a plain (faster) ``nn.Conv2d`` there.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_h = tf_same_padding(
            x.shape[-2], kernel_size=self.kernel_size[0], stride=self.stride[0], dilation=self.dilation[0]
        )
        pad_w = tf_same_padding(
            x.shape[-1], kernel_size=self.kernel_size[1], stride=self.stride[1], dilation=self.dilation[1]
        )
        if any(pad_h) or any(pad_w):
            x = F.pad(x, (*pad_w, *pad_h))
        return self._conv_forward(x, self.weight, self.bias)


def make_conv2d(
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = False,
    padding: str = "symmetric",
) -> nn.Conv2d:
    """A square convolution with either symmetric or TF 'SAME' padding."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if padding == "tf" and stride > 1:
        conv_type: type[nn.Conv2d] = Conv2dTFSame
        pad = 0
    else:
        conv_type = nn.Conv2d
        pad = dilation * (kernel_size - 1) // 2
    return conv_type(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=pad,
        dilation=dilation,
        groups=groups,
        bias=bias,
    )


class ConvBNAct(nn.Sequential):
    """Convolution (no bias) -> BatchNorm -> activation; children are named ``conv``, ``bn``, ``act``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        padding: str = "symmetric",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        activation: type[nn.Module] | None = nn.ReLU6,
    ) -> None:
        super().__init__()
        self.conv = make_conv2d(
            in_channels,
            out_channels,
            kernel_size=kernel_size,
            stride=stride,
            dilation=dilation,
            groups=groups,
            padding=padding,
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum)
        self.act = activation(inplace=True) if activation is not None else nn.Identity()
