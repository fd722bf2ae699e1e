"""``LOCAL_CONV``: a stack of bias-free convolutions, a strictly local rule.

Because no layer has a bias and every activation maps 0 to 0, an all-zero
neighbourhood maps to exactly zero (``zero_preserving``), and the output at a
cell depends only on the input within Chebyshev distance
``receptive_radius = n_layers · (kernel_size // 2)`` — the conditions under
which the sparse native ``Engine`` reproduces the dense result (DESIGN §3.4).
"""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import torch
from torch import nn

from ._common import check_int, make_activation
from .registry import register_model

__all__ = ["LocalConv"]

#: activations that the native ConvModel also implements (see conv_model_spec)
LOCAL_ACTIVATIONS = ("relu", "gelu", "tanh", "identity")


@register_model("LOCAL_CONV")
class LocalConv(nn.Module):
    """``n_layers`` convolutions ``k×k`` (zero padding ``k//2``, no bias), the activation
    between layers and none after the last: 2·d -> hidden -> ... -> hidden -> 2·d.

    Args:
        d_state: complex channels per cell.
        hidden_channels: channels of the inner layers (unused when n_layers == 1).
        n_layers: number of convolutions (>= 1).
        kernel_size: odd kernel size (>= 1).
        activation: 'relu' | 'gelu' | 'tanh' | 'identity'.

    Works for any H, W >= 1.
    """

    architecture: str = "LOCAL_CONV"
    unitary: bool = False
    has_memory: bool = False
    zero_preserving: bool = True

    def __init__(self, d_state: int, hidden_channels: int = 16, n_layers: int = 2,
                 kernel_size: int = 3, activation: str = "tanh") -> None:
        super().__init__()
        self.d_state = check_int("d_state", d_state, 1)
        self.hidden_channels = check_int("hidden_channels", hidden_channels, 1)
        self.n_layers = check_int("n_layers", n_layers, 1)
        self.kernel_size = check_int("kernel_size", kernel_size, 1)
        if self.kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        make_activation(activation, LOCAL_ACTIVATIONS)
        self.activation = str(activation).lower()
        self.in_channels = 2 * self.d_state
        #: Chebyshev radius of the receptive field: sum of kernel_size//2 over the layers
        self.receptive_radius: int = self.n_layers * (self.kernel_size // 2)
        chans = [self.in_channels] + [self.hidden_channels] * (self.n_layers - 1) + [self.in_channels]
        layers: List[nn.Module] = []
        for i in range(self.n_layers):
            layers.append(nn.Conv2d(chans[i], chans[i + 1], self.kernel_size,
                                    padding=self.kernel_size // 2, bias=False))
            if i < self.n_layers - 1:
                layers.append(make_activation(self.activation, LOCAL_ACTIVATIONS))
        self.net = nn.Sequential(*layers)

    @property
    def model_params(self) -> Dict[str, Any]:
        """Constructor arguments (the config's MODEL_PARAMS)."""
        return {"d_state": self.d_state, "hidden_channels": self.hidden_channels, "n_layers": self.n_layers,
                "kernel_size": self.kernel_size, "activation": self.activation}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 2·d_state, H, W) float32 -> δ of the same shape."""
        if not torch.jit.is_tracing():
            if x.dim() != 4 or x.size(1) != self.in_channels:
                raise ValueError("expected input of shape (B, " + str(self.in_channels) + ", H, W), got "
                                 + str(list(x.shape)))
        return self.net(x)

    def conv_model_spec(self) -> Dict[str, Any]:
        """Weights for the torch-free native model: ``atheria_core.ConvModel(**spec)``.

        Returns ``{"weights": [float32 (out, in, k, k), ...], "biases": None, "activation": name}``.
        """
        weights = [m.weight.detach().cpu().numpy().astype(np.float32).copy()
                   for m in self.net if isinstance(m, nn.Conv2d)]
        return {"weights": weights, "biases": None, "activation": self.activation}
