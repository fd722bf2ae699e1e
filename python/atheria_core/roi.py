"""``ROIManager``: the region of interest of a grid view, like the original backend's.

``set_roi(x, y, w, h)`` selects ``[x, x+w) × [y, y+h)`` (validated against the grid),
``clear_roi()`` goes back to the whole grid, ``get_roi_info()`` reports the region, its
area and the reduction ratio (grid cells / region cells).  ``roi`` is the region in the
engines' form ``(x0, y0, x1, y1)`` (half-open) or ``None`` (whole grid).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

__all__ = ["ROIManager"]


def _int(value: Any, name: str) -> int:
    import numbers
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


class ROIManager:
    """Region of interest of a ``grid_size × grid_size`` grid (cells)."""

    def __init__(self, grid_size: int) -> None:
        g = _int(grid_size, "grid_size")
        if g < 1:
            raise ValueError(f"grid_size must be >= 1, got {g}")
        self.grid_size = g
        self._roi: Optional[Tuple[int, int, int, int]] = None

    @property
    def roi(self) -> Optional[Tuple[int, int, int, int]]:
        """``(x0, y0, x1, y1)`` half-open, or None (the whole grid)."""
        return self._roi

    @property
    def roi_enabled(self) -> bool:
        return self._roi is not None

    def set_roi(self, x: int, y: int, width: int, height: int) -> bool:
        """Selects ``[x, x+width) × [y, y+height)``; it must lie inside the grid and be non-empty.

        Returns True; raises ValueError / TypeError naming the argument otherwise (the ROI unchanged).
        """
        x, y = _int(x, "x"), _int(y, "y")
        w, h = _int(width, "width"), _int(height, "height")
        g = self.grid_size
        if w < 1 or h < 1:
            raise ValueError(f"width and height must be >= 1, got {w} x {h}")
        if x < 0 or y < 0 or x + w > g or y + h > g:
            raise ValueError(f"roi x={x}, y={y}, width={w}, height={h} does not fit the {g}x{g} grid")
        self._roi = (x, y, x + w, y + h)
        return True

    def clear_roi(self) -> None:
        """Back to the whole grid."""
        self._roi = None

    def region(self) -> Tuple[int, int, int, int]:
        """The region in use: the ROI, or the whole grid."""
        return self._roi if self._roi is not None else (0, 0, self.grid_size, self.grid_size)

    def get_roi_info(self) -> Dict[str, Any]:
        """``enabled``, ``x``, ``y``, ``width``, ``height``, ``area`` (cells), ``grid_area`` and
        ``reduction_ratio`` (grid cells / region cells, 1.0 for the whole grid)."""
        x0, y0, x1, y1 = self.region()
        area = (x1 - x0) * (y1 - y0)
        grid_area = self.grid_size * self.grid_size
        return {"enabled": self._roi is not None, "x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0,
                "roi": (x0, y0, x1, y1), "area": area, "grid_area": grid_area,
                "reduction_ratio": grid_area / area}

    def __repr__(self) -> str:
        return f"ROIManager(grid_size={self.grid_size}, roi={self._roi})"
