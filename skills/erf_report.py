"""The result of `effective_receptive_field` (skills.erf): per-axis ERF size, mass widths and the gradient summary.

Kept apart from the engine so that the server can publish the output schema without importing NumPy.
Every per-axis list has one entry per spatial axis of the input ([l], [h, w] or [d, h, w]).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class GradientSummary(BaseModel):
    """The input gradient: the first draw's exact signed gradient in numbers, and the ERF map (averaged magnitudes)."""

    shape: list[int] = Field(description="[C, *spatial] of one input image (the batch axis, if any, passes through)")
    min: float | None = Field(description="smallest entry of the first draw's signed gradient d(target)/d(input)")
    max: float | None = Field(description="largest entry of the first draw's signed gradient")
    sum: float | None = Field(description="sum of the first draw's signed gradient")
    peak: list[int] | None = Field(description="input pixel where the ERF map is largest (first such pixel)")
    peak_value: float | None = Field(description="the ERF map's largest value")
    support: list[list[int]] | None = Field(
        description="per axis [first, last]: the input pixels where the ERF map is nonzero (inside the theoretical region)"
    )
    nonzero_pixels: int = Field(description="input pixels where the ERF map is nonzero")
    map_shape: list[int] = Field(description="the ERF map's shape: the input's spatial size")
    map: list[Any] | None = Field(
        description="the ERF map itself (sum over input channels of |gradient|, averaged over the samples) as a nested "
        "list; null when it has more than max_output_elements_inline elements"
    )


class ErfReport(BaseModel):
    """Effective receptive field (Luo et al., NeurIPS 2016) of one output pixel: the exact gradient with respect to the input, measured per axis."""

    input_shape: list[int]
    output_shape: list[int] = Field(description="shape of the layer whose pixel is probed (the network's output, or at_layer)")
    at_layer: str | None = Field(
        None, description="path or node name of the probed layer when it is not the network's output (e.g. the last spatial layer before flatten)"
    )
    layer_type: str = Field(description="type of the probed layer")
    output_position: list[int] = Field(description="the probed output pixel, one index per spatial axis (default: size // 2)")
    output_channel: int | None = Field(
        description="the probed channel; null = the gradient of the sum over all channels at that pixel"
    )
    weights: Literal["uniform", "random", "given"]
    seed: int
    samples: int = Field(description="draws averaged (weights and/or inputs); 1 when every draw gives the same gradient")
    receptive_field: list[int] = Field(description="the theoretical receptive field per axis (as receptive_field reports it)")
    input_region: list[list[int]] | None = Field(
        description="per axis [first, last]: the theoretical input region of that pixel, padding counted as pixels (unclipped)"
    )
    erf_std: list[float | None] = Field(
        description="per axis: standard deviation (px) of the ERF map's marginal, the paper's measure of ERF size"
    )
    erf_centre: list[float | None] = Field(description="per axis: the marginal's mean (input pixel coordinate)")
    mass_width_50: list[int | None] = Field(
        description="per axis: fewest consecutive input pixels holding at least 50% of the marginal's mass"
    )
    mass_width_95: list[int | None] = Field(
        description="per axis: fewest consecutive input pixels holding at least 95% of the marginal's mass"
    )
    mass_interval_50: list[list[int]] | None = Field(description="per axis [first, last] of that 50% window")
    mass_interval_95: list[list[int]] | None = Field(description="per axis [first, last] of that 95% window")
    rf_fraction_50: list[float | None] = Field(description="per axis: mass_width_50 / receptive_field")
    rf_fraction_95: list[float | None] = Field(
        description="per axis: mass_width_95 / receptive_field (the paper: a fraction that shrinks as depth grows)"
    )
    gradient: GradientSummary
    macs: int = Field(
        description="multiply-accumulates run: conv and transposed conv, forward (when needed) plus the input-gradient "
        "backward pass, over all samples"
    )
    forward_pass: bool = Field(
        description="false when the network is linear in its input (no activation, max pool or mul on the path): "
        "the gradient is then the same for every input, so only the backward pass runs"
    )
    protocol: str = Field(description="what was computed, in words")
    warnings: list[str] = Field(default_factory=list)
