"""How to run a model on an image of any size: plain values, no config."""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

__all__ = ["InferenceOptions"]


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
    """How to run a model on an image of any size (see the module docstring).

    Attributes:
        image_size: ``[H, W]`` the model was trained at (the resize path).
        sliding_window: tile the image at its original resolution instead.
        window_size: ``[h, w]`` of a tile (``[d, h, w]`` for volumes); ``None`` =
            ``image_size``.
        overlap: minimum overlap between neighbouring tiles, in [0, 1).
        gaussian: Gaussian (True) or uniform (False) blending of tiles.
        sigma_scale: Gaussian sigma as a fraction of the window side.
        batch_size: tiles per model call.
        tta_mirror: average the logits of the four flips.
        tta_transpose: average them with those of the transposed image (height and
            width swapped): with ``tta_mirror``, the 8 symmetries of the square, 8x
            the model calls. 2-D images only.
        num_classes: logit channels the model outputs (1 = binary, sigmoid; K > 1 =
            softmax over K classes).
    """

    image_size: Sequence[int]
    sliding_window: bool = False
    window_size: Optional[Sequence[int]] = None
    overlap: float = 0.5
    gaussian: bool = True
    sigma_scale: float = 0.125
    batch_size: int = 4
    tta_mirror: bool = False
    tta_transpose: bool = False
    num_classes: int = 1

    def __post_init__(self):
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"`overlap` must be in [0, 1), received {self.overlap!r}")
        if self.batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, received {self.batch_size!r}")
        if self.sigma_scale <= 0:
            raise ValueError(f"`sigma_scale` must be > 0, received {self.sigma_scale!r}")
        if self.num_classes < 1:
            raise ValueError(f"`num_classes` must be >= 1, received {self.num_classes!r}")

    @property
    def window(self) -> tuple:
        """``(h, w)`` of a tile, or ``(d, h, w)`` for volumes."""
        size = self.window_size if self.window_size is not None else self.image_size
        return tuple(int(side) for side in size)
