"""Building blocks and argument checks shared by the model classes."""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

#: activations offered by the models; all map 0 to 0.
ACTIVATIONS = ("relu", "gelu", "tanh", "silu", "identity")


def check_int(name: str, value: Any, minimum: int) -> int:
    """Returns ``value`` if it is an int (not bool) >= minimum, else raises TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def make_activation(name: Any, allowed: tuple = ACTIVATIONS) -> nn.Module:
    """nn.Module for an activation name (exact GELU, not the tanh approximation)."""
    if not isinstance(name, str) or name.lower() not in allowed:
        raise ValueError(f"activation must be one of {list(allowed)}, got {name!r}")
    name = name.lower()
    if name == "relu":
        return nn.ReLU()
    if name == "gelu":
        return nn.GELU()
    if name == "tanh":
        return nn.Tanh()
    if name == "silu":
        return nn.SiLU()
    return nn.Identity()


class DoubleConv(nn.Module):
    """(conv3x3, padding 1 -> activation) x 2.  (B, in, H, W) -> (B, out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, activation: str) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            make_activation(activation),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            make_activation(activation),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class Down(nn.Module):
    """2x2 max-pool then DoubleConv.  (B, in, H, W) -> (B, out, H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int, activation: str) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = DoubleConv(in_channels, out_channels, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x))


class Up(nn.Module):
    """2x transposed conv, concatenation with the skip, DoubleConv.
    (B, in, H, W), skip (B, out, 2H, 2W) -> (B, out, 2H, 2W)."""

    def __init__(self, in_channels: int, out_channels: int, activation: str) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels, activation)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


def describe(meta_owner: Any) -> dict:
    """The metadata of a model instance as a plain dict (used by export and experiments)."""
    rr: Optional[int] = getattr(meta_owner, "receptive_radius", None)
    return {
        "architecture": getattr(meta_owner, "architecture", None),
        "d_state": getattr(meta_owner, "d_state", None),
        "unitary": bool(getattr(meta_owner, "unitary", False)),
        "has_memory": bool(getattr(meta_owner, "has_memory", False)),
        "receptive_radius": None if rr is None else int(rr),
        "zero_preserving": bool(getattr(meta_owner, "zero_preserving", False)),
    }
