"""How uint8 pixels become numbers: one scale for every kernel, the reference and the data loader.

Kernels read uint8 rows as they lie and multiply each finished dot product by
:data:`PIXEL_SCALE`; the reference and :func:`to_float` multiply each converted pixel
by it. Both give pixels in [0, 1] as the TensorFlow tutorial's ``images`` did.
"""

from __future__ import annotations

import numpy as np

#: uint8 pixels become floats in [0, 1] by this factor, here and inside every kernel.
PIXEL_SCALE = 1.0 / 255.0


def to_float(pixels: np.ndarray, dtype) -> np.ndarray:
    """uint8 ``pixels`` as floats of ``dtype`` (a NumPy dtype) in [0, 1]: ``pixels * dtype(PIXEL_SCALE)``."""
    return pixels.astype(dtype) * dtype.type(PIXEL_SCALE)
