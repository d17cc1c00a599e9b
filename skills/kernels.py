"""The kernel bank (named 2-D filters) and small sample inputs, so a kernel can be tried without typing an array.

Plain Python data (no numpy at import): the server lists them cheaply; *_array() builds the NumPy arrays.
A named kernel is applied to each input channel on its own (depthwise: weight [C, 1, kH, kW], groups=C).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ArrayError

Grid = list[list[float]]


@dataclass(frozen=True)
class Named:
    """A named 2-D array (a kernel [kH, kW] or a sample [C, H, W]) with a one-line description."""

    name: str
    description: str
    values: list

    @property
    def shape(self) -> list[int]:
        shape, v = [], self.values
        while isinstance(v, list):
            shape.append(len(v))
            v = v[0]
        return shape

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "shape": self.shape, "values": self.values}


def _scaled(rows: list[list[int]], divisor: int = 1) -> Grid:
    return [[v / divisor for v in row] for row in rows]


def _outer(a: list[int], b: list[int], divisor: int) -> Grid:
    return [[x * y / divisor for y in b] for x in a]


def _transpose(rows: Grid) -> Grid:
    return [list(col) for col in zip(*rows, strict=True)]


_SOBEL_X = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
_PREWITT_X = [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]
_SCHARR_X = [[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]]

_KERNELS = [
    # the lesson's five ("Convolutions from Scratch", Step 6)
    Named("identity", "copies the input: a single 1 at the centre", _scaled([[0, 0, 0], [0, 1, 0], [0, 0, 0]])),
    Named("blur_3x3", "box blur: the mean of the 3x3 neighbourhood (ones/9)", _scaled([[1] * 3] * 3, 9)),
    Named(
        "sharpen",
        "crisps edges: 5 times the centre minus its 4 neighbours",
        _scaled([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    ),
    Named("sobel_x", "vertical edges: positive where brightness increases left to right", _scaled(_SOBEL_X)),
    Named(
        "sobel_y", "horizontal edges: positive where brightness increases top to bottom", _transpose(_scaled(_SOBEL_X))
    ),
    # more that people reach for
    Named("gaussian_3x3", "Gaussian blur, binomial [1,2,1]x[1,2,1]/16", _outer([1, 2, 1], [1, 2, 1], 16)),
    Named(
        "gaussian_5x5",
        "Gaussian blur, binomial [1,4,6,4,1]x[1,4,6,4,1]/256",
        _outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1], 256),
    ),
    Named("box_5x5", "box blur over 5x5 (ones/25)", _scaled([[1] * 5] * 5, 25)),
    Named(
        "laplacian",
        "second derivative, 4-neighbour: zero on flat and linear regions, fires on edges and spots",
        _scaled([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
    ),
    Named("laplacian_8", "second derivative, 8-neighbour (diagonals too)", _scaled([[1, 1, 1], [1, -8, 1], [1, 1, 1]])),
    Named(
        "outline",
        "edge map: 8 times the centre minus its 8 neighbours (negated laplacian_8)",
        _scaled([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]),
    ),
    Named("emboss", "relief effect lit from the top left", _scaled([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])),
    Named("prewitt_x", "vertical edges, unweighted rows (Prewitt)", _scaled(_PREWITT_X)),
    Named("prewitt_y", "horizontal edges, unweighted columns (Prewitt)", _transpose(_scaled(_PREWITT_X))),
    Named("scharr_x", "vertical edges with better rotational symmetry than Sobel (Scharr)", _scaled(_SCHARR_X)),
    Named(
        "scharr_y",
        "horizontal edges with better rotational symmetry than Sobel (Scharr)",
        _transpose(_scaled(_SCHARR_X)),
    ),
]
KERNELS: dict[str, Named] = {k.name: k for k in _KERNELS}


def _image(h: int, w: int, f) -> Grid:
    return [[float(f(i, j)) for j in range(w)] for i in range(h)]


_SAMPLES = [
    Named(
        "step",
        "the lesson's synthetic step image [1, 16, 16]: 0 on columns 0-7, 1 on columns 8-15 (one vertical edge)",
        [_image(16, 16, lambda i, j: j >= 8)],
    ),
    Named(
        "checkerboard",
        "a checkerboard [1, 16, 16] of 4x4 squares, 0 and 1",
        [_image(16, 16, lambda i, j: (i // 4 + j // 4) % 2)],
    ),
    Named("ramp", "a horizontal gradient ramp [1, 16, 16]: column j holds j/15", [_image(16, 16, lambda i, j: j / 15)]),
    Named(
        "square",
        "a bright 8x8 square centred in a dark [1, 16, 16] image (edges on all four sides)",
        [_image(16, 16, lambda i, j: 4 <= i < 12 and 4 <= j < 12)],
    ),
    Named(
        "impulse",
        "a single 1 at the centre of a [1, 9, 9] image: the output shows the kernel, flipped",
        [_image(9, 9, lambda i, j: i == 4 and j == 4)],
    ),
    Named(
        "rgb",
        "three channels [3, 16, 16]: a vertical step, a horizontal step and a diagonal ramp, to see depthwise kernels",
        [
            _image(16, 16, lambda i, j: j >= 8),
            _image(16, 16, lambda i, j: i >= 8),
            _image(16, 16, lambda i, j: (i + j) / 30),
        ],
    ),
]
SAMPLES: dict[str, Named] = {s.name: s for s in _SAMPLES}


def _lookup(bank: dict[str, Named], name: str, what: str) -> Named:
    try:
        return bank[name]
    except KeyError:
        shown = repr(name) if len(str(name)) <= 40 else repr(str(name)[:40]) + "..."
        raise ArrayError(f"unknown {what} {shown}; known: {', '.join(bank)}") from None


def kernel(name: str) -> Named:
    """The named kernel of the bank; ArrayError listing the names if unknown."""
    return _lookup(KERNELS, name, "kernel")


def sample(name: str) -> Named:
    """The named sample input; ArrayError listing the names if unknown."""
    return _lookup(SAMPLES, name, "sample")


def kernel_array(name: str, dtype: Any = None):
    """The named kernel as a NumPy array [kH, kW] (float64 unless dtype says otherwise)."""
    import numpy as np

    return np.array(kernel(name).values, dtype=dtype or np.float64)


def depthwise_weight(name: str, channels: int, dtype: Any = None):
    """The named kernel for every one of `channels` channels: weight [C, 1, kH, kW], to use with groups=C."""
    import numpy as np

    k = kernel_array(name, dtype)
    return np.ascontiguousarray(np.broadcast_to(k, (channels, 1, *k.shape)))


def sample_array(name: str, dtype: Any = None):
    """The named sample input as a NumPy array [C, H, W]."""
    import numpy as np

    return np.array(sample(name).values, dtype=dtype or np.float64)


def apply_kernel(x: Any, name: str, **geometry: Any):
    """Convolve each channel of x ([C, H, W] or [N, C, H, W]) with the named kernel on its own (groups=C)."""
    from .conv import as_array, conv2d

    arr = as_array(x, "x", (3, 4))
    return conv2d(
        arr,
        depthwise_weight(name, arr.shape[-3], arr.dtype if arr.dtype.kind == "f" else None),
        groups=arr.shape[-3],
        **geometry,
    )
