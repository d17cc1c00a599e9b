"""Convolution arithmetic and CNN planning, exactly as PyTorch: the domain core (no MCP here).

Heavy pieces (numpy) load on first use, so `import skills` stays cheap for the server's cold start.
"""

from importlib import import_module
from typing import Any

from .arithmetic import OutputSizeResult, conv_output_size
from .errors import ArrayError, ConvError, GeometryError, InfeasibleError, LimitError, OptionError, SpecError

# name -> module that defines it; resolved lazily by __getattr__ below.
_LAZY = {
    "conv2d": "conv",
    "conv2d_naive": "conv",
    "conv2d_backward": "conv",
    "im2col": "conv",
    "col2im": "conv",
    "shape_calculator": "walk",
    "receptive_field": "walk",
    "parameter_count": "walk",
    "ShapeReport": "walk",
    "ReceptiveFieldReport": "walk",
    "ParameterReport": "walk",
    "design_architecture": "designer",
    "DesignReport": "designer",
}

__all__ = [
    "ArrayError",
    "ConvError",
    "GeometryError",
    "InfeasibleError",
    "LimitError",
    "OptionError",
    "OutputSizeResult",
    "SpecError",
    "conv_output_size",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'skills' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
