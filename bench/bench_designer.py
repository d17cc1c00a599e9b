"""Benchmark: design_architecture against brute-force enumeration, in one run.

1. The issue's space (input 3x224x224, target RF 200, budget 500,000 params, max_layers 10, kernel_sizes
   {1,3,5,7}, strides {1,2}, dilations {1,2}, six widths): time to a proven optimum per objective (capacity
   included), with and without the Pareto front, and with the options and limits on.
2. A space small enough for brute force (~10 s): every sequence enumerated depth-first (prefix figures shared,
   nothing pruned but kernels that do not fit), the best top_k per objective compared with the designer's, and
   the speed ratio; then capacity and params under max_macs / min_output_size / max_activation_bytes, the
   same enumeration filtered.

Pure Python, single process, one thread (no NumPy or torch involved). Run: python bench/bench_designer.py [--quick]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skills.arithmetic import conv_output_length, receptive_field_step  # noqa: E402
from skills.designer import design_architecture  # noqa: E402
from skills.errors import GeometryError  # noqa: E402

OBJECTIVES = ("params", "macs", "layers", "capacity")
ORDER = {"params": (0, 2, 1), "macs": (1, 2, 0), "layers": (2, 1, 0), "capacity": (0, 1, 2)}  # into (params, MACs, depth)
BYTES = 4  # float32 activations; the designer's spec has a ReLU after each conv: 2 outputs of the conv's size


def key(figures, objective):
    """(objective, tie-breaks) of (params, MACs, depth, ...): smaller first; capacity wants the most params."""
    out = tuple(figures[i] for i in ORDER[objective])
    return (-out[0], *out[1:]) if objective == "capacity" else out

ISSUE = dict(
    input_shape=[3, 224, 224], param_budget=500_000, target_receptive_field=200, max_layers=10,
    kernel_sizes=[1, 3, 5, 7], strides=[1, 2], dilations=[1, 2], widths=[16, 32, 48, 64, 96, 128],
)


def timed(fn, repeats):
    """(median seconds, last result) over `repeats` calls."""
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def brute_force(input_shape, param_budget, target_receptive_field, max_layers, kernel_sizes, strides, dilations, widths):
    """Enumerate every stack of 1..max_layers convs: (params, MACs, depth, activation bytes, smallest output side) of each
    one that fits the budget and the target, and the count of stacks."""
    c0, h0, w0 = input_shape
    dmin = min(dilations)
    choices = [
        (k, s, d, d * (k - 1) // 2) for k in kernel_sizes for s in strides for d in dilations if not (k == 1 and d != dmin)
    ]
    fitting = []
    count = 0

    def walk(depth, h, w, c, rf, jump, params, macs, act, side):
        nonlocal count
        for k, s, d, pad in choices:
            try:
                ho = conv_output_length(h, k, s, pad, pad, d)
                wo = conv_output_length(w, k, s, pad, pad, d)
            except GeometryError:
                continue
            rf2, jump2, _ = receptive_field_step(rf, jump, 0.0, k, s, pad, d)
            side2 = min(side, ho, wo)
            for co in widths:
                count += 1
                p = params + co * c * k * k + co
                m = macs + ho * wo * co * c * k * k
                a = act + 2 * BYTES * co * ho * wo
                if p <= param_budget and rf2 >= target_receptive_field:
                    fitting.append((p, m, depth + 1, a, side2))
                if depth + 1 < max_layers:
                    walk(depth + 1, ho, wo, co, rf2, jump2, p, m, a, side2)

    walk(0, h0, w0, c0, 1, 1, 0, 0, 0, min(h0, w0))
    return fitting, count


def best_of(fitting, objective, top_k, max_macs=None, min_output_size=None, max_activation_bytes=None):
    """The top_k (objective, tie-breaks) keys among the fitting stacks that meet the limits."""
    kept = [
        f for f in fitting
        if (max_macs is None or f[1] <= max_macs) and (min_output_size is None or f[4] >= min_output_size)
        and (max_activation_bytes is None or f[3] <= max_activation_bytes)
    ]
    return sorted(key(f, objective) for f in kept)[:top_k]


def keys(report, objective):
    return [key((d.params, d.macs, d.depth), objective) for d in report.designs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller brute-force space (~1 s)")
    args = parser.parse_args()
    repeats = 5

    print("1. The issue's space: 3x224x224, target RF 200, budget 500,000, max_layers 10, kernels {1,3,5,7},")
    print("   strides {1,2}, dilations {1,2}, widths {16,32,48,64,96,128}; median of", repeats, "fresh calls")
    print()
    print(f"| {'objective':<9} | {'options':<23} | {'time s':>7} | {'optimal':<7} | {'states':>7} | {'best params':>11} | {'best MACs':>13} | {'depth':>5} | front |")
    print(f"|{'-' * 11}|{'-' * 25}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 13}|{'-' * 15}|{'-' * 7}|-------|")
    rows = [
        (objective, label, opts)
        for objective in OBJECTIVES
        for label, opts in (("(none), no front", {"pareto": False}), ("(none)", {}))
    ] + [
        ("params", "reject_gridding", {"reject_gridding": True}),
        ("params", "gridding+monotone+BN", {"reject_gridding": True, "monotone_widths": True, "batch_norm": True}),
        ("params", "reject_redundant", {"reject_redundant": True}),
        ("capacity", "min_output_size 7", {"min_output_size": 7}),
        ("capacity", "reject_gridding", {"reject_gridding": True}),
        ("capacity", "max_macs 1e9, act 2e8 B", {"max_macs": 10**9, "max_activation_bytes": 2 * 10**8}),
        ("macs", "min_output_size 7", {"min_output_size": 7}),
    ]
    for objective, label, opts in rows:
        seconds, report = timed(lambda o=objective, x=opts: design_architecture(**ISSUE, objective=o, **x), repeats)
        best = report.designs[0]
        front = f"{len(report.pareto_front)}" if report.pareto_front else "-"
        print(
            f"| {objective:<9} | {label:<23} | {seconds:>7.3f} | {str(report.optimal):<7} | {report.explored:>7,} | "
            f"{best.params:>11,} | {best.macs:>13,} | {best.depth:>5} | {front:>5} |"
        )
    print()
    report = design_architecture(**ISSUE, pareto=False)
    print("   best by params:", report.designs[0].summary, "| RF", report.designs[0].receptive_field[0])
    report = design_architecture(**ISSUE, reject_gridding=True, pareto=False)
    print("   best by params, no holes in the RF:", report.designs[0].summary, "| RF", report.designs[0].receptive_field[0])
    report = design_architecture(**ISSUE, objective="capacity", min_output_size=7, pareto=False)
    print("   best by capacity, outputs >= 7x7:", report.designs[0].summary, "| params", f"{report.designs[0].params:,}")
    print()

    if args.quick:
        small = dict(input_shape=[3, 64, 64], param_budget=60_000, target_receptive_field=40, max_layers=4,
                     kernel_sizes=[1, 3, 5], strides=[1, 2], dilations=[1, 2], widths=[8, 16])
    else:
        small = dict(input_shape=[3, 64, 64], param_budget=60_000, target_receptive_field=40, max_layers=5,
                     kernel_sizes=[3, 5, 7], strides=[1, 2], dilations=[1], widths=[8, 16, 32])
    top_k = 3
    print(f"2. Brute force vs the designer, top {top_k} per objective: {small}")
    t = time.perf_counter()
    fitting, count = brute_force(**small)
    brute_s = time.perf_counter() - t
    print(f"   brute force: {count:,} stacks enumerated in {brute_s:.2f} s (every objective and limit from one pass; the")
    print("   ratio charges each row the whole enumeration, as brute force for that row alone would cost)")
    print()
    limited = dict(max_macs=small["param_budget"] * 40, min_output_size=8)
    rows = [(objective, {}) for objective in OBJECTIVES] + [
        ("capacity", limited),
        ("capacity", {"max_activation_bytes": 150_000}),
        ("params", {**limited, "max_activation_bytes": 150_000}),
    ]
    print(f"| {'objective':<9} | {'limits':<68} | {'brute force s':>13} | {'designer s':>10} | {'ratio':>8} | same top {top_k} | best (objective, tie-breaks) |")
    print(f"|{'-' * 11}|{'-' * 70}|{'-' * 15}|{'-' * 12}|{'-' * 10}|{'-' * 12}|{'-' * 29}|")
    for objective, limits in rows:
        seconds, report = timed(
            lambda o=objective, x=limits: design_architecture(**small, objective=o, top_k=top_k, pareto=False, **x), repeats
        )
        expected = best_of(fitting, objective, top_k, **limits)
        same = report.optimal and keys(report, objective) == expected
        label = ", ".join(f"{k}={v:,}" for k, v in limits.items()) or "-"
        print(
            f"| {objective:<9} | {label:<68} | {brute_s:>13.2f} | {seconds:>10.4f} | {brute_s / seconds:>7,.0f}x | {str(same):<10} | "
            f"{expected[0]} |"
        )
        if not same:
            print("   MISMATCH:", keys(report, objective), "vs", expected)


if __name__ == "__main__":
    main()
