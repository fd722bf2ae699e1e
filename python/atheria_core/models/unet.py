"""U-Net rules: ``UNET`` and ``UNET_UNITARY``.

Input and output: float32 ``(B, 2·d_state, H, W)``, channels
``[Re ψ_0..Re ψ_{d-1}, Im ψ_0..Im ψ_{d-1}]``; the output is the update δ in
the same layout.  ``H`` and ``W`` must be multiples of ``2**depth`` (each of the
``depth`` levels halves the grid with a 2x2 max-pool and doubles it back with a
stride-2 transposed convolution); all convolutions are 3x3 with zero padding 1,
so any such size works, not only the training size.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from ._common import DoubleConv, Down, Up, check_int, make_activation
from .registry import register_model

__all__ = ["UNet", "UNetUnitary"]


@register_model("UNET")
class UNet(nn.Module):
    """Classic U-Net on the whole grid (global receptive field).

    Args:
        d_state: complex channels per cell (input/output have ``2·d_state`` channels).
        hidden_channels: channels of the first level; level ``i`` has ``hidden·2**i``.
        depth: number of down/up-sampling levels (>= 1); H, W must be multiples of ``2**depth``.
        activation: 'relu' | 'gelu' | 'tanh' | 'silu'.
    """

    architecture: str = "UNET"
    #: engines multiply δ by ψ (element-wise complex) when True
    unitary: bool = False
    #: forward(x, h, c) -> (δ, h', c') when True
    has_memory: bool = False
    #: patch radius that sees the whole receptive field; None = global (pooling)
    receptive_radius: Optional[int] = None
    #: maps an all-zero input to exactly zero (U-Nets have biases: no)
    zero_preserving: bool = False

    def __init__(self, d_state: int, hidden_channels: int = 32, depth: int = 2,
                 activation: str = "gelu") -> None:
        super().__init__()
        self.d_state = check_int("d_state", d_state, 1)
        self.hidden_channels = check_int("hidden_channels", hidden_channels, 1)
        self.depth = check_int("depth", depth, 1)
        make_activation(activation)  # validates
        self.activation = str(activation).lower()
        self.in_channels = 2 * self.d_state
        #: H and W must be multiples of this (2**depth)
        self.size_multiple = 2 ** self.depth
        widths = [self.hidden_channels * 2 ** i for i in range(self.depth + 1)]
        #: channels of the bottleneck feature map (and of ConvLSTM memory)
        self.bottleneck_channels = widths[-1]
        self.inc = DoubleConv(self.in_channels, widths[0], self.activation)
        self.downs = nn.ModuleList([Down(widths[i], widths[i + 1], self.activation) for i in range(self.depth)])
        self.ups = nn.ModuleList([Up(widths[i + 1], widths[i], self.activation)
                                  for i in reversed(range(self.depth))])
        self.outc = nn.Conv2d(widths[0], self.in_channels, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal (fan-in) weights for the hidden convolutions, so that activations keep their
        scale through the depth (PyTorch's default shrinks them at every layer and starves the
        bottleneck); the 1x1 output layer is PyTorch's default scaled by 0.1, so that an untrained
        rule makes small updates (δ ≈ 0.03 rather than ≈ 0.3) and training starts near ψ' ≈ ψ."""
        for mod in self.modules():
            if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)) and mod is not self.outc:
                nn.init.kaiming_normal_(mod.weight, mode="fan_in", nonlinearity="relu")
        with torch.no_grad():
            self.outc.weight.mul_(0.1)
            if self.outc.bias is not None:
                self.outc.bias.mul_(0.1)

    @property
    def model_params(self) -> Dict[str, Any]:
        """Constructor arguments (the config's MODEL_PARAMS)."""
        return {"d_state": self.d_state, "hidden_channels": self.hidden_channels,
                "depth": self.depth, "activation": self.activation}

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.size(1) != self.in_channels:
            raise ValueError("expected input of shape (B, " + str(self.in_channels) + ", H, W), got "
                             + str(list(x.shape)))
        m = self.size_multiple
        if x.size(2) % m != 0 or x.size(3) % m != 0:
            raise ValueError("H and W must be multiples of 2**depth = " + str(m) + ", got "
                             + str(list(x.shape)))

    def encode(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """(B, 2d, H, W) -> bottleneck (B, hidden·2**depth, H/2**depth, W/2**depth), skips."""
        skips: List[torch.Tensor] = []
        h = self.inc(x)
        for down in self.downs:
            skips.append(h)
            h = down(h)
        return h, skips

    def decode(self, h: torch.Tensor, skips: List[torch.Tensor]) -> torch.Tensor:
        """Bottleneck features and skips -> δ (B, 2d, H, W)."""
        i = len(skips) - 1
        for up in self.ups:
            h = up(h, skips[i])
            i -= 1
        return self.outc(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 2·d_state, H, W) float32 -> δ of the same shape."""
        if not torch.jit.is_tracing():
            self._check_input(x)
        h, skips = self.encode(x)
        return self.decode(h, skips)


@register_model("UNET_UNITARY")
class UNetUnitary(UNet):
    """The U-Net network, flagged unitary-style: the engines apply ``δ ← δ·ψ``
    (element-wise complex product) before the decay and normalisation, so the
    network learns a multiplicative (phase/amplitude) update."""

    architecture: str = "UNET_UNITARY"
    unitary: bool = True
