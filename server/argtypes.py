"""Argument types shared by the tools: per-axis ints with one clear error each, and a stated upper bound."""

from typing import Annotated, Any

from pydantic import Field, PlainValidator, ValidationInfo, WithJsonSchema

from skills.arithmetic import MAX_EXTENT


def shown(value: Any, limit: int = 60) -> str:
    """A short, always-printable form of a caller's value (str() refuses ints over 4,300 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length():,} bits"
    try:
        text = repr(value)
    except ValueError:
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The validators below raise ValueError on purpose: pydantic turns it into an argument-validation error, which
# the SDK reports to the client with the message (a ToolError here would be a crash inside validation).
def _per_axis(minimum: int, axes: int = 2):
    def check(value: Any, info: ValidationInfo) -> int | list[int]:
        name = info.field_name or "value"
        if not (_is_int(value) or (isinstance(value, list) and 1 <= len(value) <= axes and all(map(_is_int, value)))):
            form = "[h, w]" if axes == 2 else "a list of 1 to 3 (one per spatial axis)"
            raise ValueError(f"{name} must be an int or {form} of ints, got {shown(value)}")
        values = [value] if _is_int(value) else value
        if any(v < minimum or v > MAX_EXTENT for v in values):
            raise ValueError(f"{name} must be between {minimum} and {MAX_EXTENT:,} on every axis, got {shown(value)}")
        return value

    return check


def _schema(minimum: int, axes: int = 2) -> dict:
    item = {"type": "integer", "minimum": minimum, "maximum": MAX_EXTENT}
    return {"anyOf": [item, {"type": "array", "items": item, "minItems": 1, "maxItems": axes}]}


IntOrPair = Annotated[int | list[int], PlainValidator(_per_axis(1)), WithJsonSchema(_schema(1))]
"""A positive int (square) or [h, w]."""
NonNegOrPair = Annotated[int | list[int], PlainValidator(_per_axis(0)), WithJsonSchema(_schema(0))]
"""A non-negative int (square) or [h, w]."""
IntOrAxes = Annotated[int | list[int], PlainValidator(_per_axis(1, 3)), WithJsonSchema(_schema(1, 3))]
"""A positive int (every axis) or one per spatial axis: [l], [h, w] or [d, h, w]."""
NonNegOrAxes = Annotated[int | list[int], PlainValidator(_per_axis(0, 3)), WithJsonSchema(_schema(0, 3))]
"""A non-negative int (every axis) or one per spatial axis."""
Count = Annotated[int, Field(ge=1, le=MAX_EXTENT)]
"""A positive count (channels, features, budget items) with the same stated upper bound."""


def _conv_padding(axes: int):
    def check(value: Any, info: ValidationInfo) -> int | list[int] | str:
        if isinstance(value, str):
            if value in ("same", "valid"):
                return value
            form = "[h, w]" if axes == 2 else "a per-axis list"
            raise ValueError(f"{info.field_name or 'padding'} must be an int, {form}, 'same' or 'valid', got {shown(value)}")
        return _per_axis(0, axes)(value, info)

    return check


def _padding_schema(axes: int) -> dict:
    return {"anyOf": [*_schema(0, axes)["anyOf"], {"type": "string", "enum": ["same", "valid"]}]}


ConvPadding = Annotated[int | list[int] | str, PlainValidator(_conv_padding(2)), WithJsonSchema(_padding_schema(2))]
"""Conv padding: a non-negative int, [h, w], or PyTorch's 'same' / 'valid'."""
ConvPaddingAxes = Annotated[int | list[int] | str, PlainValidator(_conv_padding(3)), WithJsonSchema(_padding_schema(3))]
"""Conv padding for 1, 2 or 3 axes: a non-negative int, one per axis, or 'same' / 'valid'."""
