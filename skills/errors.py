"""One root error for the domain: every message carries the values and the fix."""


class ConvError(ValueError):
    """Root of every error this package raises on bad input; the message is meant for a model to act on."""


class GeometryError(ConvError):
    """A size, kernel, stride, padding or dilation combination PyTorch would reject."""


class SpecError(ConvError):
    """A network spec that cannot be walked: unknown layer, channel mismatch, bad text."""


class ArrayError(ConvError):
    """An array argument with the wrong shape, a ragged nesting or non-numeric values."""


class LimitError(ConvError):
    """Work or input beyond a configured bound; the message names the bound and how to raise it."""


class InfeasibleError(ConvError):
    """A design request no stack in the search space can satisfy; says which constraint and by how much."""


class OptionError(ConvError):
    """An option outside its values or at odds with another (dtype, batch_size, mode, optimizer); names them all."""
