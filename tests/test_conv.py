"""skills.conv against PyTorch (forward, every geometry, and autograd), the naive loops against im2col, and the lesson's examples."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from skills import conv
from skills.conv import col2im, conv2d, conv2d_backward, conv2d_naive, conv_geometry, im2col
from skills.errors import ArrayError, ConvError, GeometryError
from skills.kernels import KERNELS, SAMPLES, apply_kernel, depthwise_weight, kernel_array, sample_array
from skills.picture import render

# The lesson "Convolutions from Scratch": the worked 5x5 example and its Sobel kernel.
LESSON_X = [[1, 2, 0, 1, 2], [0, 1, 3, 1, 0], [2, 1, 0, 2, 1], [1, 0, 2, 1, 3], [2, 1, 1, 0, 1]]
LESSON_W = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]


@st.composite
def geometries(draw, modes=("zeros", "reflect", "replicate", "circular")):
    """A conv2d call: shapes, stride, padding (int, [h, w], 'same', 'valid'), dilation, groups, padding_mode, bias."""
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.sampled_from([1, 2, 3, [1, 2], [2, 1]]))
    dilation = draw(st.sampled_from([1, 2, [1, 2], [2, 1]]))
    padding = draw(
        st.one_of(
            st.integers(0, 3), st.lists(st.integers(0, 3), min_size=2, max_size=2), st.just("same"), st.just("valid")
        )
    )
    mode = draw(st.sampled_from(modes))
    batch = draw(st.sampled_from([None, 1, 2]))
    bias = draw(st.booleans())
    return dict(
        x_shape=(c_in, h, w) if batch is None else (batch, c_in, h, w),
        w_shape=(c_out, c_in // groups, kh, kw),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=mode,
        bias=bias,
    )


def _arrays(g, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(g["x_shape"]).astype(dtype)
    w = rng.standard_normal(g["w_shape"]).astype(dtype)
    b = rng.standard_normal(g["w_shape"][0]).astype(dtype) if g["bias"] else None
    return x, w, b


def _torch_conv(torch, x, w, b, g):
    """nn.Conv2d with the given weights: PyTorch's own padding-mode and 'same' handling."""
    c_out, c_in_g, kh, kw = w.shape
    pad = g["padding"] if isinstance(g["padding"], (int, str)) else tuple(g["padding"])
    layer = torch.nn.Conv2d(
        c_in_g * g["groups"],
        c_out,
        (kh, kw),
        stride=g["stride"],
        padding=pad,
        dilation=g["dilation"],
        groups=g["groups"],
        bias=b is not None,
        padding_mode=g["padding_mode"],
        dtype=torch.float64,
    )
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        if b is not None:
            layer.bias.copy_(torch.from_numpy(b))
        return layer(torch.from_numpy(x)).numpy()


def _kwargs(g):
    return {k: g[k] for k in ("stride", "padding", "dilation", "groups", "padding_mode")}


@settings(max_examples=80, deadline=None)
@given(geometries())
def test_conv2d_matches_torch_nn_conv2d_on_every_geometry_and_padding_mode(g):
    torch = pytest.importorskip("torch")
    x, w, b = _arrays(g)
    try:
        expected = _torch_conv(torch, x, w, b, g)
    except (RuntimeError, ValueError):  # PyTorch refuses the geometry: so must we
        with pytest.raises(ConvError):
            conv2d(x, w, b, **_kwargs(g))
        return
    got = conv2d(x, w, b, **_kwargs(g))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(geometries())
def test_naive_loops_and_im2col_agree(g):
    x, w, b = _arrays(g, seed=1)
    try:
        fast = conv2d(x, w, b, **_kwargs(g))
    except GeometryError:
        assume(False)
        return
    np.testing.assert_allclose(conv2d_naive(x, w, b, **_kwargs(g)), fast, rtol=1e-10, atol=1e-10)


@settings(max_examples=80, deadline=None)
@given(geometries(modes=("zeros",)), st.booleans())
def test_backward_matches_torch_autograd(g, given_grad):
    torch = pytest.importorskip("torch")
    x, w, b = _arrays(g, seed=2)
    kw = {k: g[k] for k in ("stride", "padding", "dilation", "groups")}
    try:
        geom = conv_geometry(x.shape, w.shape, **kw)
    except GeometryError:
        assume(False)
        return
    grad_out = np.random.default_rng(3).standard_normal(geom.output_shape) if given_grad else None
    xt, wt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    bt = None if b is None else torch.from_numpy(b).requires_grad_()
    pad = kw["padding"] if isinstance(kw["padding"], (int, str)) else tuple(kw["padding"])
    out = torch.nn.functional.conv2d(xt, wt, bt, kw["stride"], pad, kw["dilation"], kw["groups"])
    go = torch.ones_like(out) if grad_out is None else torch.from_numpy(grad_out)
    grads = torch.autograd.grad(out, [t for t in (xt, wt, bt) if t is not None], go)
    gi, gw, gb = conv2d_backward(x, w, grad_out, b, **kw)
    np.testing.assert_allclose(gi, grads[0].numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw, grads[1].numpy(), rtol=1e-10, atol=1e-10)
    if b is None:
        assert gb is None
    else:
        np.testing.assert_allclose(gb, grads[2].numpy(), rtol=1e-10, atol=1e-10)


def test_images_cut_into_row_blocks_give_the_same_forward_and_backward(monkeypatch):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 13, 10)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    # 3*3*3 rows * 10 columns * 4 output rows = 1080: blocks of 4 rows, then a last block of 1 (13 = 4+4+4+1)
    monkeypatch.setattr(conv, "COLUMN_BUDGET", 1080)
    assert conv_geometry(x.shape, w.shape, padding=1).row_blocks == [(0, 4), (4, 8), (8, 12), (12, 13)]
    xt, wt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    out = torch.nn.functional.conv2d(xt, wt, padding=1)
    gx, gw = torch.autograd.grad(out.sum(), (xt, wt))
    np.testing.assert_allclose(conv2d(x, w, padding=1), out.detach().numpy(), rtol=1e-5, atol=1e-5)
    gi, gwn, _ = conv2d_backward(x, w, None, padding=1)
    np.testing.assert_allclose(gi, gx.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gwn, gw.numpy(), rtol=1e-4, atol=1e-4)
    # strided, so the stride phases and the row blocks meet: 7x5 output, blocks of 3 rows (27*5*3 = 405)
    monkeypatch.setattr(conv, "COLUMN_BUDGET", 405)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    assert conv_geometry(x.shape, w.shape, 2, 1).row_blocks == [(0, 3), (3, 6), (6, 7)]
    np.testing.assert_allclose(conv2d(x64, w64, None, 2, 1), conv2d_naive(x64, w64, None, 2, 1), rtol=1e-12)
    xt, wt = torch.from_numpy(x64).requires_grad_(), torch.from_numpy(w64).requires_grad_()
    gx, gw = torch.autograd.grad(torch.nn.functional.conv2d(xt, wt, None, 2, 1).sum(), (xt, wt))
    gi, gwn, _ = conv2d_backward(x64, w64, None, None, 2, 1)
    np.testing.assert_allclose(gi, gx.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gwn, gw.numpy(), rtol=1e-12)


def test_lesson_worked_5x5_example():
    # Expected by the lesson's own definition Y[i, j] = sum(W * X[i:i+3, j:j+3]) (brute force);
    # Y[0, 0] = -3, Y[0, 1] = 0 and Y[0, 2] = 3 checked by hand.
    x, k = np.array(LESSON_X, dtype=float), np.array(LESSON_W, dtype=float)
    expected = np.array([[np.sum(k * x[i : i + 3, j : j + 3]) for j in range(3)] for i in range(3)])
    assert expected[0].tolist() == [-3, 0, 3]
    for method in ("naive", "im2col"):
        y = conv2d(x[None], k[None, None], method=method)
        assert y.shape == (1, 3, 3)
        np.testing.assert_array_equal(y[0], expected)


def test_lesson_sobel_on_the_step_image_lights_up_the_edge_columns():
    # The lesson: "Expect large positive values on column 7 (left-to-right brightness increase) and zeros
    # everywhere else". Precisely, with padding=1: columns 7 and 8 both straddle the step (4, or 3 on the top
    # and bottom rows where the zero padding cuts the kernel), and column 15 is negative (-4 / -3) because the
    # zero padding past the right border is a falling edge. Everything else is 0.
    y = conv2d_naive(sample_array("step"), kernel_array("sobel_x")[None, None], padding=1)[0]
    edge = np.array([3] + [4] * 14 + [3], dtype=float)
    np.testing.assert_array_equal(y[:, 7], edge)
    np.testing.assert_array_equal(y[:, 8], edge)
    np.testing.assert_array_equal(y[:, 15], -edge)
    rest = np.delete(y, [7, 8, 15], axis=1)
    assert not rest.any()


def test_lesson_im2col_loop_and_the_vectorised_im2col_agree():
    # The lesson's Step 4 im2col (a Python loop over output positions), as written there.
    def lesson_im2col(x, kh, kw, stride=1, padding=0):
        c_in, h, w = x.shape
        x_pad = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
        h_out = (h + 2 * padding - kh) // stride + 1
        w_out = (w + 2 * padding - kw) // stride + 1
        cols = np.zeros((c_in * kh * kw, h_out * w_out), dtype=x.dtype)
        col = 0
        for i in range(h_out):
            for j in range(w_out):
                cols[:, col] = x_pad[:, i * stride : i * stride + kh, j * stride : j * stride + kw].reshape(-1)
                col += 1
        return cols

    x = np.random.default_rng(5).standard_normal((3, 7, 6))
    for stride, padding in ((1, 0), (2, 1), (3, 2)):
        np.testing.assert_array_equal(im2col(x, 3, stride, padding), lesson_im2col(x, 3, 3, stride, padding))


@settings(max_examples=40, deadline=None)
@given(geometries(modes=("zeros",)))
def test_col2im_is_the_adjoint_of_im2col(g):
    # <im2col(x), C> == <x, col2im(C)> for every x and C: the defining property of the gradient of im2col.
    x, _, _ = _arrays(g, seed=6)
    k = g["w_shape"][2:]
    try:
        cols = im2col(x, k, g["stride"], g["padding"], g["dilation"])
    except GeometryError:
        assume(False)
        return
    c = np.random.default_rng(7).standard_normal(cols.shape)
    back = col2im(c, x.shape, k, g["stride"], g["padding"], g["dilation"])
    assert back.shape == x.shape
    assert np.isclose(np.sum(cols * c), np.sum(x * back), rtol=1e-10, atol=1e-10)


def test_float32_stays_float32_and_float64_stays_float64_and_ints_compute_in_float64():
    x = np.ones((2, 5, 5))
    w = np.ones((3, 2, 3, 3))
    assert conv2d(x.astype(np.float32), w.astype(np.float32)).dtype == np.float32
    assert conv2d(x, w).dtype == np.float64
    assert conv2d(x.astype(int), w.astype(int)).dtype == np.float64
    gi, gw, _ = conv2d_backward(x.astype(np.float32), w.astype(np.float32))
    assert gi.dtype == gw.dtype == np.float32


def test_nested_lists_are_accepted():
    y = conv2d([LESSON_X], [[LESSON_W]], bias=[1])
    assert y.shape == (1, 3, 3) and y[0, 0, 0] == -2


def test_depthwise_groups_equal_to_channels_convolve_each_channel_on_its_own():
    x = np.random.default_rng(8).standard_normal((3, 8, 8))
    y = apply_kernel(x, "laplacian", padding="same")
    assert y.shape == x.shape
    for c in range(3):
        np.testing.assert_allclose(y[c], conv2d(x[c : c + 1], kernel_array("laplacian")[None, None], padding="same")[0])


# --- errors: the values and the fix in the message


def test_ragged_array_names_where_it_is_ragged():
    with pytest.raises(ArrayError, match=r"x is ragged: x\[0\]\[0\] has shape \[3\] but x\[0\]\[1\] has shape \[2\]"):
        conv2d([[[1, 2, 3], [4, 5]]], [[[[1]]]])


def test_non_numeric_values_are_an_array_error_naming_the_position():
    with pytest.raises(ArrayError, match=r"x\[0\]\[0\]\[0\] is 'a', not a number: arrays must hold real numbers"):
        conv2d([[["a", "b"], ["c", "d"]]], [[[[1]]]])
    # NaN and infinity reach a server as null (they are no JSON numbers); in Python they are refused where they are
    with pytest.raises(ArrayError, match=r"x\[0\]\[0\]\[1\] is null, not a number \(NaN and infinity"):
        conv2d([[[1, None], [2, 3]]], [[[[1]]]])
    with pytest.raises(ArrayError, match=r"weight\[0\]\[0\]\[0\]\[1\] is inf: arrays must hold finite numbers"):
        conv2d([[[1.0, 2.0], [2.0, 3.0]]], [[[[1.0, float("inf")]]]])


def test_lists_nested_too_deep_are_an_array_error_not_a_recursion_error():
    deep = 1.0
    for _ in range(3000):
        deep = [deep]
    with pytest.raises(ArrayError, match="nests lists more than 8 deep"):
        conv2d(deep, [[[[1]]]])
    with pytest.raises(ArrayError, match=r"nests lists more than 8 deep at x\[1\]"):
        conv2d([[[0.0]], deep], [[[[1]]]])


def test_wrong_rank_is_an_array_error():
    with pytest.raises(ArrayError, match=r"x must have 3 or 4 dimensions, got 2"):
        conv2d(np.ones((4, 4)), np.ones((1, 1, 3, 3)))
    with pytest.raises(ArrayError, match=r"weight must have 4 dimensions, got 2"):
        conv2d(np.ones((1, 4, 4)), np.ones((3, 3)))


def test_channel_mismatch_names_both_channel_counts_and_the_fix():
    with pytest.raises(
        ArrayError, match=r"x has C_in=3 channels but weight \[8, 2, 3, 3\] expects .* = 2.*C_in/groups = 3"
    ):
        conv2d(np.ones((3, 8, 8)), np.ones((8, 2, 3, 3)))
    with pytest.raises(ArrayError, match=r"or use groups=2"):
        conv2d(np.ones((4, 8, 8)), np.ones((8, 2, 3, 3)))


def test_groups_must_divide_both_channel_counts():
    with pytest.raises(ArrayError, match=r"C_in=3 is not divisible by groups=2"):
        conv2d(np.ones((3, 8, 8)), np.ones((4, 1, 3, 3)), groups=2)
    with pytest.raises(ArrayError, match=r"C_out=3, not divisible by groups=2"):
        conv2d(np.ones((4, 8, 8)), np.ones((3, 2, 3, 3)), groups=2)


def test_geometry_errors_come_from_the_shared_arithmetic():
    with pytest.raises(GeometryError, match=r"along H: kernel spans 7 px .* padded input is 5 px"):
        conv2d(np.ones((1, 5, 9)), np.ones((1, 1, 7, 3)))
    with pytest.raises(GeometryError, match=r"reflect padding must be smaller than the input"):
        conv2d(np.ones((1, 3, 3)), np.ones((1, 1, 3, 3)), padding=3, padding_mode="reflect")
    with pytest.raises(GeometryError, match=r"padding='same' is not supported for strided"):
        conv2d(np.ones((1, 5, 5)), np.ones((1, 1, 3, 3)), stride=2, padding="same")
    with pytest.raises(GeometryError, match=r"padding_mode must be one of"):
        conv2d(np.ones((1, 5, 5)), np.ones((1, 1, 3, 3)), padding_mode="symmetric")


def test_bias_and_grad_output_shapes_are_checked():
    with pytest.raises(ArrayError, match=r"bias must have C_out=2 entries"):
        conv2d(np.ones((1, 5, 5)), np.ones((2, 1, 3, 3)), bias=[1, 2, 3])
    with pytest.raises(ArrayError, match=r"grad_output must have the output's shape \[2, 3, 3\], got \[2, 5, 5\]"):
        conv2d_backward(np.ones((1, 5, 5)), np.ones((2, 1, 3, 3)), np.ones((2, 5, 5)))


# --- kernel bank, samples, picture


def test_kernel_bank_holds_the_lessons_five_with_the_lessons_values():
    # Values from the lesson, Step 6 ("A bank of hand-designed kernels").
    lesson = {
        "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
        "blur_3x3": (np.ones((3, 3)) / 9.0).tolist(),
        "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
        "sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
        "sobel_y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    }
    for name, values in lesson.items():
        np.testing.assert_allclose(kernel_array(name), values)
    assert len(KERNELS) >= 12
    assert all(k.description for k in KERNELS.values())


def test_smoothing_kernels_sum_to_one_and_derivative_kernels_to_zero():
    for name in ("blur_3x3", "gaussian_3x3", "gaussian_5x5", "box_5x5", "identity", "sharpen"):
        assert np.isclose(kernel_array(name).sum(), 1.0), name
    for name in (
        "sobel_x",
        "sobel_y",
        "laplacian",
        "laplacian_8",
        "outline",
        "prewitt_x",
        "prewitt_y",
        "scharr_x",
        "scharr_y",
    ):
        assert np.isclose(kernel_array(name).sum(), 0.0), name


def test_step_sample_is_the_lessons_synthetic_step_image():
    img = np.zeros((1, 16, 16), dtype=np.float32)  # the lesson's synthetic_step_image()
    img[:, :, 8:] = 1.0
    np.testing.assert_array_equal(sample_array("step"), img)
    assert {"step", "checkerboard", "ramp"} <= set(SAMPLES)


def test_depthwise_weight_repeats_the_kernel_per_channel():
    w = depthwise_weight("sobel_y", 3)
    assert w.shape == (3, 1, 3, 3)
    np.testing.assert_array_equal(w[2, 0], kernel_array("sobel_y"))


def test_picture_is_a_png_with_a_panel_per_channel():
    from io import BytesIO

    from PIL import Image

    x = sample_array("rgb")
    png = render(x, depthwise_weight("sobel_x", 3), apply_kernel(x, "sobel_x", padding=1), "sobel_x")
    assert png.startswith(b"\x89PNG")
    img = Image.open(BytesIO(png))
    assert img.width > 3 * 16 and img.height > 3 * 16
