"""The server's bounds on input and work, each configurable and each named in the error that enforces it.

Every limit has an environment variable CONV_MCP_<NAME upper-case> (e.g. CONV_MCP_MAX_INPUT_ELEMENTS=4000000)
and a command-line flag --<name with dashes> (e.g. --max-input-elements 4000000); the flag wins.
"""

import os
from dataclasses import dataclass, fields


@dataclass
class Limits:
    """Bounds enforced by the tools; defaults are sized for small arrays and interactive use."""

    max_input_elements: int = 1_000_000
    """conv2d / conv2d_backward: elements in x (and in weight, grad_output); effective_receptive_field: every map it holds."""
    max_macs: int = 1_000_000_000
    """conv2d / conv2d_backward / effective_receptive_field (forward + backward, every sample): multiply-accumulates of one call."""
    max_output_elements_inline: int = 4_096
    """conv2d / conv2d_backward: larger arrays come back summarised (shape, statistics, a slice)."""
    max_layers: int = 100_000
    """walk tools: layers in one network spec, nested blocks included."""
    max_depth: int = 64
    """walk tools: nesting depth of residual/concat blocks."""
    max_spec_chars: int = 1_000_000
    """walk tools: characters of a text `spec`."""
    max_design_states: int = 5_000_000
    """design_architecture: search states created (labels plus bound-table entries) before stopping with the best so far."""
    max_design_time_s: float = 60.0
    """design_architecture: the largest time_limit_s a call may ask for."""
    max_model_bytes: int = 512 * 1024 * 1024
    """walk tools: size of a model file (`model` or `model_base64`), refused before it is read."""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Limits":
        """Limits with any CONV_MCP_<NAME> environment variables applied."""
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = env.get(f"CONV_MCP_{f.name.upper()}")
            if raw is not None:
                values[f.name] = type(f.default)(float(raw)) if f.type in (int, "int") else float(raw)
        return cls(**values)

    @staticmethod
    def how_to_raise(name: str) -> str:
        """The sentence an error appends to say how to raise limit `name`."""
        return f"raise it with --{name.replace('_', '-')} or CONV_MCP_{name.upper()}"


LIMITS = Limits.from_env()
"""The process-wide limits; server.__main__ replaces fields from the command line before serving."""
