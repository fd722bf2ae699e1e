"""Learned-rule architectures ("Law M") and their registry.

=================  ===============  =======  ==========  ================  ===============
name               class            unitary  has_memory  receptive_radius  zero_preserving
=================  ===============  =======  ==========  ================  ===============
``UNET``           ``UNet``         False    False       None (global)     False
``UNET_UNITARY``   ``UNetUnitary``  True     False       None (global)     False
``UNET_CONVLSTM``  ``UNetConvLSTM`` False    True        None (global)     False
``LOCAL_CONV``     ``LocalConv``    False    False       n_layers·(k//2)   True
=================  ===============  =======  ==========  ================  ===============

Every model takes float32 ``(B, 2·d_state, H, W)`` (real parts then imaginary
parts) and returns the update δ in the same layout; memory models take and
return ``(x, h, c) -> (δ, h', c')`` and export ``init_memory(x)``.  U-Nets need
H and W to be multiples of ``2**depth``.

>>> from atheria_core.models import build_model
>>> m = build_model("UNET", {"d_state": 4, "hidden_channels": 8, "depth": 2})
"""
from __future__ import annotations

from ._common import describe as model_metadata
from .convlstm import ConvLSTMCell, UNetConvLSTM
from .local_conv import LocalConv
from .registry import (MODEL_REGISTRY, ModelConfigError, ModelParamsError, UnknownArchitectureError,
                       available_architectures, build_model, get_model_class, normalize_architecture,
                       register_model)
from .unet import UNet, UNetUnitary

__all__ = [
    "UNet", "UNetUnitary", "UNetConvLSTM", "ConvLSTMCell", "LocalConv",
    "MODEL_REGISTRY", "register_model", "get_model_class", "available_architectures", "build_model",
    "normalize_architecture", "model_metadata",
    "ModelConfigError", "UnknownArchitectureError", "ModelParamsError",
]
