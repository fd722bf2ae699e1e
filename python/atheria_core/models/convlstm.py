"""``UNET_CONVLSTM``: a U-Net with a ConvLSTM memory cell at the bottleneck.

``forward(x, h, c) -> (δ, h', c')``; ``init_memory(x) -> (h, c)`` gives zero
memory of shape ``(B, hidden·2**depth, H/2**depth, W/2**depth)`` for input x.
The engines carry ``h, c`` from one step to the next (DESIGN §3.5).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from .registry import register_model
from .unet import UNet

__all__ = ["ConvLSTMCell", "UNetConvLSTM"]


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM cell (Shi et al. 2015), 3x3 gates with zero padding.

    x (B, in, h, w), h and c (B, hidden, h, w) -> h', c' (B, hidden, h, w).
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels,
                               kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        g = self.gates(torch.cat([x, h], dim=1))
        i, f, o, u = torch.chunk(g, 4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(u)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        return h_new, c_new


@register_model("UNET_CONVLSTM")
class UNetConvLSTM(UNet):
    """U-Net whose bottleneck passes through a ConvLSTM cell (memory across steps).

    Same arguments and size rule as :class:`UNet` (H, W multiples of ``2**depth``).
    """

    architecture: str = "UNET_CONVLSTM"
    unitary: bool = False
    has_memory: bool = True
    receptive_radius: Optional[int] = None
    zero_preserving: bool = False

    def __init__(self, d_state: int, hidden_channels: int = 32, depth: int = 2,
                 activation: str = "gelu") -> None:
        super().__init__(d_state, hidden_channels, depth, activation)
        #: channels of h and c
        self.memory_channels = self.bottleneck_channels
        self.lstm = ConvLSTMCell(self.bottleneck_channels, self.memory_channels)

    @torch.jit.export
    def init_memory(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Zero memory (h, c), each (B, hidden·2**depth, H/2**depth, W/2**depth), on x's device/dtype.

        Written with shape-following ops only, so a traced copy works for any input size.
        """
        s = self.size_multiple
        base = torch.zeros_like(x[:, :1, ::s, ::s])
        h = base.repeat(1, self.memory_channels, 1, 1)
        return h, torch.zeros_like(h)

    def _check_memory(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> None:
        s = self.size_multiple
        expect = [x.size(0), self.memory_channels, x.size(2) // s, x.size(3) // s]
        if list(h.shape) != expect or list(c.shape) != expect:
            raise ValueError("memory h, c must have shape " + str(expect) + " (init_memory(x)), got "
                             + str(list(h.shape)) + " and " + str(list(c.shape)))

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor  # type: ignore[override]
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, 2d, H, W), h and c from init_memory or the previous step -> (δ, h', c')."""
        if not torch.jit.is_tracing():
            self._check_input(x)
            self._check_memory(x, h, c)
        feat, skips = self.encode(x)
        h_new, c_new = self.lstm(feat, h, c)
        return self.decode(h_new, skips), h_new, c_new
