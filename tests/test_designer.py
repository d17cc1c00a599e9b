"""The architecture designer: exact against brute-force enumeration, every design re-walked, clear infeasibility.

The reference is a brute force written here from the definitions (PyTorch's output-size formula, the receptive
field recurrence, the set of input offsets one output pixel reads), independent of skills.arithmetic.
"""

import itertools

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client

from server.app import build_server
from skills import designer
from skills.designer import design_architecture
from skills.errors import ConvError, InfeasibleError, LimitError

ORDER = {"params": ("params", "depth", "macs"), "macs": ("macs", "depth", "params"), "layers": ("depth", "macs", "params"),
         "capacity": ("-params", "macs", "depth")}
OBJECTIVES = list(ORDER)


def brute_force(
    input_shape, budget, target, output_size, max_layers, kernel_sizes, strides, dilations, widths,
    batch_norm=False, monotone_widths=False, reject_gridding=False, reject_redundant=False,
    max_macs=None, max_activation_bytes=None, min_output_size=None, activation="relu",
):
    """Every fitting design in the space, as dicts of figures, by plain enumeration of all sequences.

    Activation bytes: 4 bytes per output element (batch included) of every layer of the spec: the conv, its
    BatchNorm and its ReLU each hold one output of the conv's size.
    """
    n = input_shape[0] if len(input_shape) == 4 else 1
    copies = 1 + batch_norm + (activation == "relu")
    floor_h, floor_w = (1, 1) if min_output_size is None else (
        (min_output_size, min_output_size) if isinstance(min_output_size, int) else tuple(min_output_size))
    c0, h0, w0 = input_shape[-3:]
    th, tw = (target, target) if isinstance(target, int) else target
    out = None if output_size is None else ((output_size, output_size) if isinstance(output_size, int) else tuple(output_size))
    dmin = min(dilations)
    layer_choices = [
        (k, s, d, c)
        for k in kernel_sizes for s in strides for d in dilations for c in widths
        if not (k == 1 and d != dmin)  # a 1x1 kernel ignores dilation: one copy (the designer's convention)
    ]
    found = []
    for depth in range(1, max_layers + 1):
        for seq in itertools.product(layer_choices, repeat=depth):
            h, w, c, rf, jump = h0, w0, c0, 1, 1
            offsets = {0}
            params = macs = act = 0
            redundant = []
            ok = True
            for i, (k, s, d, co) in enumerate(seq):
                if monotone_widths and i and co < c:
                    ok = False
                    break
                if rf >= h0 and rf >= w0:
                    redundant.append(i)  # this layer's input already sees the whole image
                    if reject_redundant:
                        ok = False
                        break
                p = d * (k - 1) // 2
                if h + 2 * p < d * (k - 1) + 1 or w + 2 * p < d * (k - 1) + 1:
                    ok = False
                    break
                h = (h + 2 * p - d * (k - 1) - 1) // s + 1  # torch.nn.Conv2d's output size
                w = (w + 2 * p - d * (k - 1) - 1) // s + 1
                if h < floor_h or w < floor_w:
                    ok = False
                    break
                params += co * c * k * k + co + (2 * co if batch_norm else 0)
                macs += h * w * co * c * k * k * n
                act += 4 * n * co * h * w * copies
                if reject_gridding:
                    offsets = {a + jump * d * t for a in offsets for t in range(k)}
                rf += d * (k - 1) * jump
                jump *= s
                c = co
            if not ok or rf < th or rf < tw or (budget is not None and params > budget):
                continue
            if (max_macs is not None and macs > max_macs) or (max_activation_bytes is not None and act > max_activation_bytes):
                continue
            if out is not None and (h, w) != out:
                continue
            if reject_gridding and offsets != set(range(max(offsets) + 1)):
                continue
            found.append({"params": params, "macs": macs, "depth": depth, "rf": rf, "h": h, "w": w, "seq": seq,
                          "act": act, "redundant": redundant})
    return found


def _key(figures, objective):
    return tuple(-figures["params"] if x == "-params" else figures[x] for x in ORDER[objective])


def best_keys(found, objective, top_k):
    keys = sorted(_key(f, objective) for f in found)
    return keys[:top_k]


def design_keys(report, objective):
    return [_key({"params": d.params, "macs": d.macs, "depth": d.depth}, objective) for d in report.designs]


SMALL = dict(max_layers=3, kernel_sizes=[1, 2, 3], strides=[1, 2], dilations=[1, 2], widths=[2, 4])

CASES = [
    # (input_shape, budget, target, output_size, space overrides, options)
    ([3, 12, 12], 400, 7, None, {}, {}),
    ([3, 12, 12], 150, 9, None, {}, {}),
    ([2, 9, 14], 10_000, [6, 9], None, {}, {}),
    ([2, 9, 14], 10_000, 5, [3, 4], {}, {}),
    ([2, 1, 16, 16], 10_000, 11, None, {}, {}),
    ([3, 12, 12], 10_000, 8, None, {}, {"batch_norm": True}),
    ([3, 12, 12], 10_000, 8, None, {}, {"monotone_widths": True}),
    ([3, 12, 12], 10_000, 10, None, {}, {"reject_gridding": True}),
    ([3, 7, 9], 10_000, 12, None, {}, {"reject_redundant": True}),
    ([3, 12, 12], 10_000, 9, [6, 6], {}, {"reject_gridding": True, "monotone_widths": True, "batch_norm": True}),
    ([1, 20, 20], 10_000, 30, None, dict(max_layers=4, kernel_sizes=[1, 3], strides=[1, 3], dilations=[1, 3], widths=[2]), {"reject_gridding": True}),
    ([1, 20, 20], 10_000, 14, None, dict(max_layers=4, kernel_sizes=[3], strides=[1, 2], dilations=[1, 2], widths=[1, 2]), {"reject_redundant": True, "reject_gridding": True}),
    # budgets that bind (capacity), and the limits: max_macs, max_activation_bytes, min_output_size
    ([3, 12, 12], 333, 5, None, {}, {}),
    ([3, 12, 12], 300, 5, None, {}, {"max_macs": 5_000}),
    ([3, 12, 12], 10_000, 7, None, {}, {"max_activation_bytes": 2_000}),
    ([3, 12, 12], 10_000, 7, None, {}, {"min_output_size": 3}),
    ([2, 9, 14], 250, 6, None, {}, {"min_output_size": [4, 6], "max_macs": 8_000, "max_activation_bytes": 5_000, "batch_norm": True}),
    ([2, 1, 16, 16], 350, 9, None, {}, {"max_activation_bytes": 12_000, "activation": "none"}),
    ([1, 20, 20], 900, 12, None, dict(max_layers=4, kernel_sizes=[1, 3], strides=[1, 2], dilations=[1, 2], widths=[3, 5]), {"min_output_size": 5, "max_macs": 60_000}),
    ([3, 12, 12], 700, 9, [6, 6], {}, {"reject_gridding": True, "monotone_widths": True, "max_activation_bytes": 9_000, "min_output_size": 2}),
    ([3, 7, 9], 320, 12, None, {}, {"reject_redundant": True, "max_macs": 9_000}),
]


def check_against(report, found, objective, top_k):
    """The report is proven, its top_k keys are brute force's, and every design is in the space with its own figures."""
    assert report.optimal
    assert design_keys(report, objective) == best_keys(found, objective, top_k)
    by_seq = {f["seq"]: f for f in found}
    for design in report.designs:
        seq = tuple((c.kernel_size, c.stride, c.dilation, c.out_channels) for c in design.convs)
        ref = by_seq[seq]  # the design is in the space and fits
        assert (design.params, design.macs, design.depth, design.activation_bytes) == (ref["params"], ref["macs"], ref["depth"], ref["act"])
        assert design.receptive_field == [ref["rf"], ref["rf"]]
        assert design.output_shape[-2:] == [ref["h"], ref["w"]]
        assert len(design.warnings) == len(ref["redundant"])
        assert all(f"conv {i} " in text for i, text in zip(ref["redundant"], design.warnings, strict=True))
    assert len({d.summary for d in report.designs}) == len(report.designs)


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("shape, budget, target, out, space, options", CASES)
def test_the_top_designs_match_brute_force_enumeration(shape, budget, target, out, space, options, objective):
    space = {**SMALL, **space}
    found = brute_force(shape, budget, target, out, **space, **options)
    assert found, "the case should be feasible"
    report = design_architecture(shape, budget, target, out, objective=objective, top_k=4, **space, **options)
    check_against(report, found, objective, 4)
    for design in report.designs:
        offsets = {0}
        jump = 1
        for c in design.convs:
            offsets = {a + jump * c.dilation * t for a in offsets for t in range(c.kernel_size)}
            jump *= c.stride
        assert design.receptive_field_holes == (offsets != set(range(max(offsets) + 1)))


@pytest.mark.parametrize("shape, budget, target, out, space, options", CASES)
def test_capacity_without_the_sums_bitsets_still_matches_brute_force(shape, budget, target, out, space, options, monkeypatch):
    # a budget too large for the bitsets (SUMS_MAX_BITS) leaves capacity with the budget itself as its bound
    monkeypatch.setattr(designer, "SUMS_MAX_BITS", 0)
    space = {**SMALL, **space}
    found = brute_force(shape, budget, target, out, **space, **options)
    report = design_architecture(shape, budget, target, out, objective="capacity", top_k=4, pareto=False, **space, **options)
    check_against(report, found, "capacity", 4)


@pytest.mark.parametrize("shape, budget, target, out, space, options", CASES)
def test_the_pareto_front_is_the_brute_force_front(shape, budget, target, out, space, options):
    space = {**SMALL, **space}
    found = brute_force(shape, budget, target, out, **space, **options)
    points = {(f["params"], f["macs"], f["depth"]) for f in found}
    front = sorted(
        p for p in points if not any(q != p and q[0] <= p[0] and q[1] <= p[1] and q[2] <= p[2] for q in points)
    )
    report = design_architecture(shape, budget, target, out, **space, **options)
    assert report.pareto_complete
    assert [(p.params, p.macs, p.depth) for p in report.pareto_front] == front


@settings(max_examples=40, deadline=None)
@given(
    c=st.integers(1, 3), h=st.integers(1, 14), w=st.integers(1, 14), target=st.integers(1, 10),
    budget=st.integers(10, 600), kernels=st.sets(st.integers(1, 4), min_size=1, max_size=2),
    strides=st.sets(st.integers(1, 3), min_size=1, max_size=2), dilations=st.sets(st.integers(1, 3), min_size=1, max_size=2),
    widths=st.sets(st.integers(1, 5), min_size=1, max_size=2), objective=st.sampled_from(OBJECTIVES),
    gridding=st.booleans(), redundant=st.booleans(), monotone=st.booleans(), use_out=st.booleans(),
    max_macs=st.none() | st.integers(100, 20_000), max_act=st.none() | st.integers(200, 20_000),
    floor=st.none() | st.integers(1, 4) | st.tuples(st.integers(1, 4), st.integers(1, 4)).map(list),
    batch_norm=st.booleans(), activation=st.sampled_from(["relu", "none"]), batch=st.integers(1, 2),
)
def test_random_small_spaces_match_brute_force(
    c, h, w, target, budget, kernels, strides, dilations, widths, objective, gridding, redundant, monotone, use_out,
    max_macs, max_act, floor, batch_norm, activation, batch,
):
    shape = [c, h, w] if batch == 1 else [batch, c, h, w]
    space = dict(max_layers=3, kernel_sizes=sorted(kernels), strides=sorted(strides), dilations=sorted(dilations), widths=sorted(widths))
    options = dict(reject_gridding=gridding, reject_redundant=redundant, monotone_widths=monotone, max_macs=max_macs,
                   max_activation_bytes=max_act, min_output_size=floor, batch_norm=batch_norm, activation=activation)
    out = [max(1, h // 2), max(1, w // 2)] if use_out else None
    found = brute_force(shape, budget, target, out, **space, **options)
    try:
        report = design_architecture(shape, budget, target, out, objective=objective, top_k=3, pareto=False, **space, **options)
    except InfeasibleError as err:
        assert not found, str(err)
        return
    check_against(report, found, objective, 3)


# ---- re-walked by the walk engine ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(input_shape=[3, 224, 224], param_budget=500_000, target_receptive_field=200),
        dict(input_shape=[2, 3, 96, 128], param_budget=200_000, target_receptive_field=[60, 90], objective="macs",
             kernel_sizes=[2, 3, 5], dilations=[1, 2], batch_norm=True),
        dict(input_shape=[3, 64, 64], param_budget=100_000, target_receptive_field=40, output_size=8, objective="layers",
             reject_gridding=True, monotone_widths=True, activation="none"),
        dict(input_shape=[1, 33, 47], param_budget=50_000, target_receptive_field=31, reject_redundant=True, dilations=[1, 2, 3]),
    ],
)
def test_every_design_re_walked_by_shape_calculator_matches_its_own_figures_the_budget_and_the_target(kwargs):
    walk = pytest.importorskip("skills.walk")
    report = design_architecture(**kwargs, max_layers=6)
    assert report.designs
    target = kwargs["target_receptive_field"]
    th, tw = (target, target) if isinstance(target, int) else target
    for design in report.designs:
        walked = walk.shape_calculator(kwargs["input_shape"], design.layers)
        assert walked.output_shape == design.output_shape
        assert walked.total_params == design.params <= kwargs["param_budget"]
        assert walked.total_buffers == design.buffers
        assert walked.total_macs == design.macs
        assert walked.total_activation_bytes == design.activation_bytes
        assert walked.receptive_field == design.receptive_field
        assert walked.receptive_field[0] >= th and walked.receptive_field[1] >= tw
        assert len(design.why) == len(design.layers)
        convs = [row for row in walked.layers if row.type == "conv2d"]
        assert [row.output_shape for row in convs] == [c.output_shape for c in design.convs]
        assert [row.receptive_field for row in convs] == [c.receptive_field for c in design.convs]
        assert [row.params for row in convs] == [c.params for c in design.convs]
        if "output_size" in kwargs:
            assert design.output_shape[-2:] == [kwargs["output_size"]] * 2
    for point in report.pareto_front:
        walked = walk.shape_calculator(kwargs["input_shape"], point.layers)
        assert (walked.total_params, walked.total_macs) == (point.params, point.macs)


def test_a_best_design_with_holes_in_its_receptive_field_comes_with_a_note_naming_reject_gridding():
    # the cheapest way to RF 200 subsamples with strided 1x1 convs, then one dilated 3x3: RF 257 with holes
    kwargs = dict(max_layers=10, kernel_sizes=[1, 3, 5, 7], dilations=[1, 2], widths=[16, 32, 48, 64, 96, 128], pareto=False)
    holes = design_architecture([3, 224, 224], 500_000, 200, **kwargs)
    assert holes.designs[0].receptive_field_holes and "reject_gridding=true" in holes.notes[-1]
    solid = design_architecture([3, 224, 224], 500_000, 200, reject_gridding=True, **kwargs)
    assert not any(d.receptive_field_holes for d in solid.designs) and not solid.notes
    assert solid.designs[0].params > holes.designs[0].params


def test_the_layers_spec_is_conv_then_relu_with_padding_dilation_times_k_minus_1_over_2():
    report = design_architecture([3, 32, 32], 50_000, 15, kernel_sizes=[3, 5], dilations=[1, 2], max_layers=4, top_k=1)
    layers = report.designs[0].layers
    assert [x["type"] for x in layers] == ["conv2d", "relu"] * report.designs[0].depth
    for conv in layers[::2]:
        assert conv["padding"] == conv["dilation"] * (conv["kernel_size"] - 1) // 2


@pytest.mark.parametrize(
    "shape, options",
    [
        ([3, 32, 32], {}),
        ([2, 3, 32, 32], {"batch_norm": True}),
        ([1, 20, 24], {"activation": "none"}),
        ([3, 1, 20, 24], {"batch_norm": True, "activation": "none", "objective": "capacity"}),
    ],
)
def test_activation_bytes_are_shape_calculators_total_activation_bytes_and_max_activation_bytes_binds(shape, options):
    walk = pytest.importorskip("skills.walk")
    kwargs = dict(max_layers=4, kernel_sizes=[3, 5], widths=[4, 8, 16], top_k=3, **options)
    free = design_architecture(shape, 20_000, 20, **kwargs)
    limit = free.designs[0].activation_bytes - 1  # the unconstrained best no longer fits
    report = design_architecture(shape, 20_000, 20, max_activation_bytes=limit, **kwargs)
    assert report.optimal and report.designs
    for design in [*free.designs, *report.designs]:
        walked = walk.shape_calculator(shape, design.layers)
        assert walked.total_activation_bytes == design.activation_bytes
        assert walked.total_activation_bytes == sum(row.activation_bytes for row in walked.layers)
    assert all(d.activation_bytes <= limit for d in report.designs)
    assert f"activation bytes <= {limit:,}" in report.optimal_over and "total_activation_bytes" in report.optimal_over


def test_designs_with_convs_that_only_see_a_fully_covered_map_carry_warnings_unless_reject_redundant():
    # a 12 px target on a 7x9 input, and capacity fills all 3 layers: a conv after the receptive field reaches 9 px sees it all
    loose = design_architecture([3, 7, 9], 10_000, 12, objective="capacity", **SMALL)
    assert all(d.warnings for d in loose.designs)
    found = {f["seq"]: f for f in brute_force([3, 7, 9], 10_000, 12, None, **SMALL)}
    for design in loose.designs:
        seq = tuple((c.kernel_size, c.stride, c.dilation, c.out_channels) for c in design.convs)
        assert [int(text.split()[1]) for text in design.warnings] == found[seq]["redundant"]
        assert all("already sees the whole 7x9 image" in text and "reject_redundant=true" in text for text in design.warnings)
    assert any("reject_redundant=true" in note for note in loose.notes)
    strict = design_architecture([3, 7, 9], 10_000, 12, objective="capacity", reject_redundant=True, **SMALL)
    assert not any(d.warnings for d in strict.designs)
    assert not any("reject_redundant" in note for note in strict.notes)


def test_the_result_says_what_was_optimised_and_over_which_space_optimal_holds():
    report = design_architecture([3, 12, 12], 400, 7, objective="macs", max_macs=50_000, max_activation_bytes=20_000,
                                 min_output_size=[2, 3], reject_gridding=True, **SMALL)
    assert report.objective_statement == "minimised total MACs; ties go to fewer layers (convs), then fewer params"
    over = report.optimal_over
    assert over.startswith("proven best over every stack of 1..3 conv2d layers on a [3, 12, 12] input, each with kernel_size from [1, 2, 3]")
    for part in ("params <= 400", "receptive field >= [7, 7] px", "every conv's output >= [2, 3] px", "MACs <= 50,000",
                 "activation bytes <= 20,000", "no holes in the receptive field"):
        assert part in over, part
    capacity = design_architecture([3, 12, 12], 400, 7, objective="capacity", **SMALL)
    assert capacity.objective_statement.startswith("maximised total params within param_budget 400")
    assert "ties go to fewer MACs, then fewer layers" in capacity.objective_statement
    assert capacity.search_space.objective == "capacity"


# ---- the user's scenarios ---------------------------------------------------------------------------------------


def test_100k_params_on_cifar_with_objective_capacity_spends_the_budget():
    # the issue: objective "params" answers an 8,176-param net for this budget (it minimises params)
    assert design_architecture([3, 32, 32], 100_000, 32, pareto=False).designs[0].params == 8_176
    for floor in (None, 4):
        report = design_architecture([3, 32, 32], 100_000, 32, objective="capacity", min_output_size=floor)
        assert report.optimal
        # no design in the space has more params than the budget, so one at exactly the budget is the max there
        assert [d.params for d in report.designs] == [100_000] * 3
        assert [d.macs for d in report.designs] == sorted(d.macs for d in report.designs)
        if floor:
            assert all(min(c.output_shape[-2:]) >= floor for d in report.designs for c in d.convs)
        walk = pytest.importorskip("skills.walk")
        assert walk.shape_calculator([3, 32, 32], report.designs[0].layers).total_params == 100_000


def test_capacity_on_cifar_is_the_brute_force_max_where_brute_force_can_enumerate_the_space():
    # the default kernels, strides and widths at 3 layers: 24^3 + 24^2 + 24 stacks
    space = dict(max_layers=3, kernel_sizes=[3, 5, 7], strides=[1, 2], dilations=[1], widths=[16, 32, 64, 128])
    for floor in (None, 4):
        found = brute_force([3, 32, 32], 100_000, 32, None, min_output_size=floor, **space)
        report = design_architecture([3, 32, 32], 100_000, 32, objective="capacity", min_output_size=floor, top_k=5, **space)
        check_against(report, found, "capacity", 5)
        assert 90_000 < report.designs[0].params == max(f["params"] for f in found) <= 100_000


def test_rf_200_on_32x32_with_min_output_size_4_finds_a_design_that_keeps_the_map_at_4x4():
    plain = design_architecture([3, 32, 32], 100_000, 200, pareto=False)
    assert min(c.output_shape[-1] for c in plain.designs[0].convs) == 1  # the issue: convs stacked on a 1x1 map
    report = design_architecture([3, 32, 32], 100_000, 200, min_output_size=4)
    assert report.optimal
    for design in report.designs:
        assert all(c.output_shape[-2:][0] >= 4 and c.output_shape[-1] >= 4 for c in design.convs)
        assert min(design.receptive_field) >= 200
        assert design.warnings  # a 200 px receptive field on a 32 px image: the later convs see a fully covered map
    found = brute_force([3, 32, 32], 100_000, 200, None, max_layers=4, kernel_sizes=[3, 7], strides=[1, 2], dilations=[1],
                        widths=[16], min_output_size=4)
    assert not found  # and a smaller space cannot: see the next test for what the designer says


def _largest_rf(size, max_layers, kernel_sizes, strides, floor):
    """Largest receptive field of any stack of 1..max_layers convs (dilation 1) whose outputs stay >= floor, by enumeration."""
    best = 1
    for depth in range(1, max_layers + 1):
        for seq in itertools.product(kernel_sizes, strides, repeat=depth):
            h, rf, jump = size, 1, 1
            for k, s in zip(seq[::2], seq[1::2], strict=True):
                h = (h + 2 * ((k - 1) // 2) - k) // s + 1
                if h < floor:
                    break
                rf += (k - 1) * jump
                jump *= s
            else:
                best = max(best, rf)
    return best


@pytest.mark.parametrize("max_layers", [5, 6])
def test_rf_200_on_32x32_out_of_reach_under_min_output_size_says_which_constraint_and_by_how_much(max_layers):
    kernels, strides = [3, 5, 7], [1, 2]
    largest = _largest_rf(32, max_layers, kernels, strides, 4)
    without = _largest_rf(32, max_layers, kernels, strides, 1)
    assert largest < 200
    with pytest.raises(InfeasibleError) as err:
        design_architecture([3, 32, 32], 100_000, 200, min_output_size=4, max_layers=max_layers)
    text = str(err.value)
    assert (f"no stack of at most {max_layers} conv layers (kernel_sizes [3, 5, 7], strides [1, 2], dilations [1]) that keeps "
            f"every conv's output at least 4x4 reaches receptive field 200 px on a 32x32 input: the largest reachable is "
            f"{largest} px ({200 - largest} short)") in text
    if without >= 200:  # 6 layers: only the floor stands in the way
        assert f"min_output_size [4, 4] is what stops it (without it the largest is {without} px)" in text
    else:  # 5 layers: too few even without it
        assert f"(without min_output_size: {without} px); raise max_layers" in text


def test_a_stopped_capacity_search_returns_designs_within_the_budget_and_says_they_are_not_proven():
    kwargs = dict(max_layers=10, kernel_sizes=[1, 3, 5, 7], strides=[1, 2], dilations=[1, 2], widths=[16, 32, 48, 64, 96, 128])
    stopped = design_architecture([3, 224, 224], 500_000, 200, objective="capacity", reject_gridding=True, max_states=100_000, **kwargs)
    assert not stopped.optimal and stopped.stopped_by == "max_states" and "not proven" in stopped.notes[0]
    assert stopped.optimal_over.startswith("NOT proven (the search stopped by max_states)")
    assert stopped.designs and all(450_000 < d.params <= 500_000 and not d.receptive_field_holes for d in stopped.designs)


# ---- infeasible requests and limits -------------------------------------------------------------------------


def test_a_budget_below_the_smallest_design_says_how_many_params_it_needs():
    shape, target, space = [3, 12, 12], 9, SMALL
    found = brute_force(shape, 10**9, target, None, **space)
    smallest = min(f["params"] for f in found)
    with pytest.raises(InfeasibleError) as err:
        design_architecture(shape, smallest - 1, target, **space)
    assert f"the smallest design that reaches receptive field 9 px within 3 layers has {smallest:,} params" in str(err.value)
    assert f"the budget is {smallest - 1:,} (1 over)" in str(err.value)


def test_a_target_beyond_reach_says_the_largest_reachable_receptive_field():
    # three 7x7 stride-2 layers: RF 1 + 6 + 12 + 24 = 43 (the recurrence RF += (k-1) * jump)
    with pytest.raises(InfeasibleError, match=r"no stack of at most 3 conv layers .* reaches receptive field 200 px .* the largest reachable is 43 px \(157 short\)"):
        design_architecture([3, 224, 224], 10**9, 200, max_layers=3, kernel_sizes=[3, 7], strides=[1, 2])


def test_an_unreachable_output_size_lists_the_reachable_sizes_nearby():
    with pytest.raises(InfeasibleError) as err:
        design_architecture([3, 224, 224], 10**9, 20, output_size=5, max_layers=10)
    text = str(err.value)
    assert "output_size [5, 5] is not reachable" in text and "[4, 4]" in text and "[7, 7]" in text


def test_an_output_size_that_caps_the_receptive_field_says_the_largest_it_allows():
    # two 7x7 stride-2 layers reach 1 + 6 + 6*2 = 19 px, but ending at 224 px allows no stride: 1 + 6 + 6 = 13
    with pytest.raises(InfeasibleError, match=r"ends at output_size \[224, 224\] reaches receptive field 16 px: the largest is 13 px"):
        design_architecture([3, 224, 224], 10**9, 16, output_size=224, max_layers=2, kernel_sizes=[3, 7])


def test_options_that_rule_out_every_design_are_named():
    # 1x1 kernels alone never grow the receptive field past 1, and stride 3 then dilation 2 leaves holes
    with pytest.raises(InfeasibleError, match="reject_gridding"):
        design_architecture([1, 30, 30], 10**6, 9, max_layers=2, kernel_sizes=[3], strides=[3], dilations=[2], reject_gridding=True)


def _least(found, key, **within):
    return min(f[key] for f in found if all(f[k] <= v for k, v in within.items()))


def test_max_macs_and_max_activation_bytes_out_of_reach_alone_say_the_least_the_space_allows():
    found = brute_force([3, 12, 12], None, 9, None, **SMALL)
    macs, act = _least(found, "macs"), _least(found, "act")
    with pytest.raises(InfeasibleError) as err:
        design_architecture([3, 12, 12], 10_000, 9, max_macs=macs - 5, **SMALL)
    assert f"the design with the fewest MACs that reaches receptive field 9 px within 3 layers has {macs:,} MACs; max_macs is {macs - 5:,} (5 over)" in str(err.value)
    with pytest.raises(InfeasibleError) as err:
        design_architecture([3, 12, 12], 10_000, 9, max_activation_bytes=act - 4, **SMALL)
    assert f"has {act:,} activation bytes; max_activation_bytes is {act - 4:,} (4 over)" in str(err.value)


def test_limits_that_can_be_met_alone_but_not_together_say_how_far_each_is_under_the_others():
    found = brute_force([3, 12, 12], None, 9, None, **SMALL)
    macs, act = _least(found, "macs"), _least(found, "act")
    assert not [f for f in found if f["macs"] <= macs and f["act"] <= act]  # the fewest MACs and the least memory differ
    act_within = _least(found, "act", macs=macs)
    macs_within = _least(found, "macs", act=act)
    with pytest.raises(InfeasibleError) as err:
        design_architecture([3, 12, 12], None, 9, max_macs=macs, max_activation_bytes=act, **SMALL)
    text = str(err.value)
    assert "each limit alone can be met" in text and "meets max_macs, max_activation_bytes together" in text
    assert f"with max_activation_bytes met, the fewest MACs is {macs_within:,}: {macs_within - macs:,} over max_macs {macs:,}" in text
    assert f"with max_macs met, the fewest activation bytes is {act_within:,}: {act_within - act:,} over max_activation_bytes {act:,}" in text


def test_a_min_output_size_the_input_or_the_output_size_cannot_meet_is_named():
    with pytest.raises(InfeasibleError, match=r"min_output_size \[20, 13\] is larger than the 12x12 input"):
        design_architecture([3, 12, 12], 10_000, 5, min_output_size=[20, 13], **SMALL)
    with pytest.raises(InfeasibleError, match=r"output_size \[2, 2\] is below min_output_size \[3, 3\]"):
        design_architecture([3, 12, 12], 10_000, 5, output_size=2, min_output_size=3, **SMALL)


def test_a_search_stopped_before_any_design_says_which_limit_to_raise():
    with pytest.raises(LimitError, match="raise time_limit_s"):
        design_architecture([3, 224, 224], 10**7, 1000, max_layers=10, kernel_sizes=[1, 2, 3, 4, 5, 6, 7], strides=[1, 2, 3],
                            dilations=[1, 2, 3], widths=list(range(8, 200, 8)), max_states=2000, reject_gridding=True)


def test_a_stopped_search_returns_the_best_found_so_far_and_says_it_is_not_proven():
    kwargs = dict(max_layers=10, kernel_sizes=[1, 3, 5, 7], strides=[1, 2], dilations=[1, 2], widths=[16, 32, 48, 64, 96, 128])
    full = design_architecture([3, 224, 224], 500_000, 200, reject_gridding=True, **kwargs)
    stopped = design_architecture([3, 224, 224], 500_000, 200, reject_gridding=True, max_states=70_000, **kwargs)
    if stopped.optimal:
        pytest.skip("the search finished within the state cap")
    assert stopped.stopped_by == "max_states" and "not proven" in stopped.notes[0]
    assert stopped.designs and stopped.designs[0].params >= full.designs[0].params


def test_should_stop_cancels_the_search_and_says_so():
    with pytest.raises(LimitError, match=r"stopped \(cancelled\)"):
        design_architecture([3, 224, 224], 10**7, 1000, max_layers=12, kernel_sizes=[1, 2, 3, 5, 7], strides=[1, 2, 3],
                            dilations=[1, 2, 3], widths=list(range(8, 256, 8)), should_stop=lambda: True, reject_gridding=True)


def test_progress_is_reported_while_searching():
    calls = []
    design_architecture([3, 224, 224], 500_000, 200, max_layers=10, kernel_sizes=[1, 3, 5, 7], dilations=[1, 2],
                        widths=[16, 32, 48, 64, 96, 128], reject_gridding=True, progress=lambda *a: calls.append(a))
    assert calls and all(total is None and "states" in message for _, total, message in calls)
    assert [done for done, _, _ in calls] == sorted(done for done, _, _ in calls)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_shape=[3, 224], param_budget=1, target_receptive_field=3), "input_shape must be"),
        (dict(input_shape=[3, 8, 8], param_budget=0, target_receptive_field=3), "param_budget must be"),
        (dict(input_shape=[3, 8, 8], param_budget=10, target_receptive_field=0), "target_receptive_field must be >= 1"),
        (dict(input_shape=[3, 8, 8], param_budget=10, target_receptive_field=3, widths=[]), "widths must be"),
        (dict(input_shape=[3, 8, 8], param_budget=10, target_receptive_field=3, objective="width"), "'capacity'"),
        (dict(input_shape=[3, 8, 8], param_budget=10, target_receptive_field=3, max_macs=0), "max_macs must be"),
        (dict(input_shape=[3, 8, 8], param_budget=10, target_receptive_field=3, max_activation_bytes=1.5), "max_activation_bytes must be"),
        (dict(input_shape=[3, 8, 8], param_budget=10, target_receptive_field=3, min_output_size=0), "min_output_size must be >= 1"),
    ],
)
def test_bad_arguments_are_domain_errors_naming_the_field(kwargs, match):
    with pytest.raises(ConvError, match=match):
        design_architecture(**kwargs)


# ---- through the real SDK Client ----------------------------------------------------------------------------


def test_the_tool_returns_the_best_design_as_structured_content_and_a_table():
    async def main():
        async with Client(build_server()) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert "design_architecture" in tools
            result = await client.call_tool(
                "design_architecture",
                {"input_shape": [3, 64, 64], "param_budget": 20_000, "target_receptive_field": 30, "max_layers": 4, "top_k": 2},
            )
            return result

    result = anyio.run(main)
    assert not result.is_error, result.content[0].text
    data = result.structured_content
    found = brute_force([3, 64, 64], 20_000, 30, None, max_layers=4, kernel_sizes=[3, 5, 7], strides=[1, 2], dilations=[1],
                        widths=[16, 32, 64, 128])
    assert data["optimal"] is True
    assert [d["params"] for d in data["designs"]] == [k[0] for k in best_keys(found, "params", 2)]
    assert "| # |" in result.content[0].text and f"{data['designs'][0]['params']:,}" in result.content[0].text


def test_the_tool_names_the_constraint_out_of_reach_and_keeps_serving():
    async def main():
        async with Client(build_server()) as client:
            bad = await client.call_tool(
                "design_architecture", {"input_shape": [3, 224, 224], "param_budget": 100, "target_receptive_field": 200}
            )
            late = await client.call_tool(
                "design_architecture",
                {"input_shape": [3, 224, 224], "param_budget": 10**6, "target_receptive_field": 200, "time_limit_s": 10**6},
            )
            ok = await client.call_tool("conv_output_size", {"input_size": 32, "kernel_size": 3})
            return bad, late, ok

    bad, late, ok = anyio.run(main)
    assert bad.is_error and "the smallest design that reaches receptive field 200 px" in bad.content[0].text
    assert "the budget is 100" in bad.content[0].text
    assert late.is_error and "max_design_time_s" in late.content[0].text and "--max-design-time-s" in late.content[0].text
    assert ok.structured_content["output_size"] == [30, 30]


def test_the_tool_reports_progress_to_the_client():
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, message))

    async def main():
        async with Client(build_server()) as client:
            return await client.call_tool(
                "design_architecture",
                {"input_shape": [3, 224, 224], "param_budget": 500_000, "target_receptive_field": 200, "max_layers": 10,
                 "kernel_sizes": [1, 3, 5, 7], "dilations": [1, 2], "widths": [16, 32, 48, 64, 96, 128]},
                progress_callback=on_progress,
            )

    result = anyio.run(main)
    assert not result.is_error
    assert seen and "design" in seen[-1][1]


def test_a_call_the_client_abandons_stops_the_search_thread(monkeypatch):
    import threading

    from server import designer_tools

    ended = threading.Event()
    outcome = []

    def recording(*args, **kwargs):
        try:
            outcome.append(design_architecture(*args, **kwargs).stopped_by)
        except LimitError as exc:
            outcome.append(str(exc))
        finally:
            ended.set()

    monkeypatch.setattr(designer_tools, "design_architecture", recording)
    wide = list(range(1, 17))  # 4,096 layer choices x 16 widths, 32 layers: minutes of search

    async def main():
        async with Client(build_server()) as client:
            with anyio.move_on_after(0.5) as scope:
                await client.call_tool(
                    "design_architecture",
                    {"input_shape": [3, 1000, 999], "param_budget": 10**9, "target_receptive_field": 10**6, "max_layers": 32,
                     "kernel_sizes": wide, "strides": wide, "dilations": wide, "widths": wide, "time_limit_s": 50},
                )
            assert scope.cancelled_caught
            await anyio.to_thread.run_sync(ended.wait, 20)

    anyio.run(main)
    assert ended.is_set() and outcome and "cancelled" in outcome[0]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_the_tool_takes_capacity_and_the_new_limits_and_its_activation_bytes_are_shape_calculators(mode):
    async def main():
        async with Client(build_server(), mode=mode) as client:
            tool = {t.name: t for t in (await client.list_tools()).tools}["design_architecture"]
            result = await client.call_tool(
                "design_architecture",
                {"input_shape": [3, 32, 32], "param_budget": 100_000, "target_receptive_field": 32, "objective": "capacity",
                 "min_output_size": 4, "max_activation_bytes": 200_000, "max_macs": 10**8, "batch_norm": True},
            )
            walked = await client.call_tool(
                "shape_calculator", {"input_shape": [3, 32, 32], "layers": result.structured_content["designs"][0]["layers"]}
            )
            zero = await client.call_tool(
                "design_architecture", {"input_shape": [3, 32, 32], "param_budget": 100_000, "target_receptive_field": 32, "max_macs": 0}
            )
            short = await client.call_tool(
                "design_architecture",
                {"input_shape": [3, 32, 32], "param_budget": 100_000, "target_receptive_field": 200, "min_output_size": 4, "max_layers": 5},
            )
            return tool, result, walked, zero, short

    tool, result, walked, zero, short = anyio.run(main)
    props = tool.input_schema["properties"]
    assert "capacity" in props["objective"]["enum"]
    assert {"minimum": 1, "type": "integer"}.items() <= props["max_macs"].items()  # optional: published without its null branch
    assert "total_activation_bytes" in props["max_activation_bytes"]["description"]
    assert "total_activation_bytes" in props["max_activation_bytes"]["description"]  # the rule, stated where it applies
    assert "min_output_size" in props
    assert not result.is_error, result.content[0].text
    data = result.structured_content
    best = data["designs"][0]
    assert data["optimal"] and best["params"] == 100_000
    assert best["activation_bytes"] == walked.structured_content["total_activation_bytes"] <= 200_000
    assert best["macs"] == walked.structured_content["total_macs"] <= 10**8
    assert all(min(c["output_shape"][-2:]) >= 4 for c in best["convs"])
    assert data["objective_statement"].startswith("maximised total params within param_budget 100,000")
    assert data["optimal_over"].startswith("proven best over every stack of 1..8 conv2d layers")
    assert "Objective: maximised total params" in result.content[0].text
    assert zero.is_error and "max_macs" in zero.content[0].text
    assert short.is_error and "the largest reachable is 139 px (61 short)" in short.content[0].text
