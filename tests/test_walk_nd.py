"""The N-d walk against PyTorch: regressions for engine bugs the N-d parity tests found."""

from __future__ import annotations

import pytest

from skills.errors import GeometryError, SpecError
from skills.walk import shape_calculator

torch = pytest.importorskip("torch")


# ---------------------------------------------------------------- engine bugs these tests found (regressions)


def test_avgpool3d_refuses_an_input_smaller_than_its_kernel_as_torch_does():
    # found by the random 3-D region probe: [1, 3, 3, 3] -> maxpool3d k1, conv3d k1 s2 (2x2x2) -> avgpool3d k3 ceil_mode
    layers = [{"type": "maxpool3d", "kernel_size": 1}, {"type": "conv3d", "out_channels": 1, "kernel_size": 1, "stride": 2},
              {"type": "avgpool3d", "kernel_size": 3, "ceil_mode": True}]
    with pytest.raises(GeometryError, match=r"^layer 2 \(avgpool3d\): the input 2x2x2 is smaller than the kernel 3x3x3 \(D 2 < kernel_size 3"):
        shape_calculator([1, 3, 3, 3], layers)
    with pytest.raises(RuntimeError, match="smaller than kernel size"):
        torch.nn.AvgPool3d(3, ceil_mode=True)(torch.zeros(1, 1, 2, 2, 2))
    # torch's avg_pool3d does not count the padding, and only it checks: max_pool3d and avg_pool2d run
    with pytest.raises(GeometryError, match=r"\(D 2 < kernel_size 3\)"):
        shape_calculator([1, 2, 5, 5], [{"type": "avgpool3d", "kernel_size": 3, "padding": 1}])
    with pytest.raises(RuntimeError, match="smaller than kernel size"):
        torch.nn.AvgPool3d(3, padding=1)(torch.zeros(1, 1, 2, 5, 5))
    pools = [("maxpool3d", torch.nn.MaxPool3d, [1, 2, 5, 5]), ("avgpool2d", torch.nn.AvgPool2d, [1, 2, 5])]
    for kind, module, input_shape in pools:
        walked = shape_calculator(input_shape, [{"type": kind, "kernel_size": 3, "stride": 1, "padding": 1}])
        assert walked.output_shape == list(module(3, 1, 1)(torch.zeros(1, *input_shape)).shape[1:]) == input_shape


def test_a_1d_adaptive_pool_refuses_output_size_none_as_torch_does():
    # found by the random 1-D stacks: [1, 4] -> zeropad1d 0 -> adaptiveavgpool1d [None] (None keeps an axis in 2-D/3-D only)
    for kind in ("adaptiveavgpool1d", "adaptivemaxpool1d"):
        with pytest.raises(SpecError, match=rf"^layer 1 \({kind}\): output_size must be an int >= 1 for {kind}.*got \[None\]"):
            shape_calculator([1, 4], [{"type": "zeropad1d", "padding": 0}, {"type": kind, "output_size": [None]}])
    with pytest.raises(TypeError, match="must be tuple of ints"):
        torch.nn.AdaptiveAvgPool1d((None,))(torch.zeros(1, 1, 4))
    assert shape_calculator([1, 4, 4], [{"type": "adaptivemaxpool2d", "output_size": [None, 2]}]).output_shape == [1, 4, 2]


def test_norms_with_the_inputs_own_statistics_refuse_one_value_as_torch_does():
    # found by the random 3-D stacks: [1, 3, 3, 3] -> conv3d k1 (reflect) -> upsample x0.5 (1x1x1) -> batchnorm3d
    # without running stats, which normalises with the batch's statistics, even in eval mode
    layers = [{"type": "conv3d", "out_channels": 1, "kernel_size": 1, "padding_mode": "reflect"},
              {"type": "upsample", "mode": "nearest", "scale_factor": 0.5, "recompute_scale_factor": True},
              {"type": "batchnorm3d", "affine": False, "track_running_stats": False}]
    with pytest.raises(GeometryError, match=r"^layer 2 \(batchnorm3d\): the input \[1, 1, 1, 1\] gives 1 value per channel"):
        shape_calculator([1, 3, 3, 3], layers)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch.nn.BatchNorm3d(1, track_running_stats=False).eval()(torch.zeros(1, 1, 1, 1, 1))
    with pytest.raises(GeometryError, match=r"^layer 0 \(instancenorm2d\): the input \[3, 1, 1\] gives 1 spatial element"):
        shape_calculator([3, 1, 1], [{"type": "instancenorm2d"}])
    with pytest.raises(ValueError, match="Expected more than 1 spatial element"):
        torch.nn.InstanceNorm2d(3).eval()(torch.zeros(1, 3, 1, 1))
    with pytest.raises(GeometryError, match=r"^layer 0 \(groupnorm\): the input \[3, 1, 1\] gives 1 value per group"):
        shape_calculator([3, 1, 1], [{"type": "groupnorm", "num_groups": 3}])
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch.nn.GroupNorm(3, 3).eval()(torch.zeros(1, 3, 1, 1))
    # running statistics, two samples, or two channels per group: torch runs them
    for input_shape, layer in (([3, 1, 1], {"type": "batchnorm2d"}), ([2, 3, 1, 1], {"type": "batchnorm2d", "track_running_stats": False}),
                               ([3, 1, 1], {"type": "instancenorm2d", "track_running_stats": True}),
                               ([4, 1, 1], {"type": "groupnorm", "num_groups": 2})):
        assert shape_calculator(input_shape, [layer]).output_shape == input_shape


def test_dropout1d_refuses_a_2d_or_3d_map_as_torch_does_even_in_eval_mode():
    # found by the random 3-D stacks: [1, 3, 3, 3] -> maxpool3d k1 -> dropout1d
    layers = [{"type": "maxpool3d", "kernel_size": 1}, {"type": "dropout1d", "p": 0.0}]
    with pytest.raises(SpecError, match=r"^layer 1 \(dropout1d\): dropout1d needs a 1-D map \[C, L\] .* \[1, 3, 3, 3\] is a 3-D map.*use dropout3d"):
        shape_calculator([1, 3, 3, 3], layers)
    with pytest.raises(RuntimeError, match="dropout1d: Expected 2D or 3D input"):
        torch.nn.Dropout1d(0.0).eval()(torch.zeros(1, 1, 3, 3, 3))
    assert shape_calculator([4, 9], [{"type": "conv1d", "out_channels": 2, "kernel_size": 3}, {"type": "dropout1d"}]).output_shape == [2, 7]


def test_an_input_shape_with_too_few_axes_says_axes():
    # found by the bad-input cases: bilinear upsampling first, of a [C, L] input, said "has 2 axises"
    with pytest.raises(GeometryError, match=r"^input_shape \[3, 16\] has 2 axes but layer 0 \(upsample\) needs a 2-D map"):
        shape_calculator([3, 16], [{"type": "upsample", "scale_factor": 2, "mode": "bilinear"}])


def test_mixing_conv2d_and_conv3d_names_the_layer_that_made_the_network_2d():
    # found by the bad-input cases: the error named the conv3d, not the conv2d (or graph node) that fixed the layout
    with pytest.raises(SpecError, match=r"^layer 1 \(conv3d\): .*one network cannot mix dimensionalities \(layer 0 \(conv2d\) makes this network 2-D\): use conv2d"):
        shape_calculator([3, 16, 16, 16], [{"type": "conv2d", "out_channels": 4, "kernel_size": 3},
                                           {"type": "conv3d", "out_channels": 4, "kernel_size": 3}])
    graph = [{"name": "stem", "inputs": ["input"], "type": "conv1d", "out_channels": 4, "kernel_size": 3},
             {"name": "pool", "inputs": ["stem"], "type": "maxpool2d", "kernel_size": 2}]
    with pytest.raises(SpecError, match=r"^node 'pool' \(maxpool2d\): .*\(node 'stem' \(conv1d\) makes this network 1-D\): use maxpool1d"):
        shape_calculator([3, 16], graph=graph)
