"""The network walk's cost: in-process by depth (100, 1,000, 10,000 layers), and shape_calculator on VGG16 over stdio
against conv_output_size in the same server and run.

Run: python bench/bench_walk.py [--repeats 20] [--calls 300]
Pure Python on both sides (no numpy or torch is imported), so thread settings do not matter here.
Targets: 1,000 layers under 20 ms in-process, cost linear in depth; VGG16 p50 within 1.3x of conv_output_size's p50.
"""

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from skills import zoo  # noqa: E402
from skills.walk import parameter_count, receptive_field, shape_calculator  # noqa: E402

SERVER = StdioServerParameters(command=sys.executable, args=["-m", "server"], cwd=str(ROOT))
CONV_ARGS = {"input_size": [224, 224], "kernel_size": 3, "stride": 1, "padding": 1}


def in_process(repeats: int) -> list[list[str]]:
    rows = []
    for depth in (100, 1_000, 10_000):
        layers = zoo.deep_stack(depth)
        timings = {}
        for name, call in (
            ("shape_calculator", lambda: shape_calculator([16, 64, 64], layers)),
            ("receptive_field", lambda: receptive_field([16, 64, 64], layers, output_position=[5, 5])),
            ("parameter_count", lambda: parameter_count(layers, input_shape=[16, 64, 64])),
        ):
            call()  # warm-up
            samples = []
            for _ in range(repeats if depth < 10_000 else max(3, repeats // 5)):
                gc.collect()
                start = time.perf_counter()
                call()
                samples.append(time.perf_counter() - start)
            timings[name] = statistics.median(samples)
        sc = timings["shape_calculator"]
        rows.append([f"{depth:,}", f"{sc * 1e3:.2f}", f"{sc / depth * 1e6:.1f}",
                     f"{timings['receptive_field'] * 1e3:.2f}", f"{timings['parameter_count'] * 1e3:.2f}"])
    return rows


async def over_stdio(calls: int) -> tuple[float, float, int]:
    vgg = {"input_shape": [3, 224, 224], "layers": zoo.vgg16()}
    walk, conv = [], []
    async with Client(SERVER) as client:
        for _ in range(20):  # warm-up both
            await client.call_tool("shape_calculator", vgg)
            await client.call_tool("conv_output_size", CONV_ARGS)
        size = 0
        for _ in range(calls):  # alternate, so machine noise hits both alike
            start = time.perf_counter()
            result = await client.call_tool("conv_output_size", CONV_ARGS)
            conv.append(time.perf_counter() - start)
            assert not result.is_error, result
            start = time.perf_counter()
            result = await client.call_tool("shape_calculator", vgg)
            walk.append(time.perf_counter() - start)
            assert not result.is_error and result.structured_content["total_params"] == 138_357_544, result
            size = len(result.content[0].text)
    return statistics.median(walk), statistics.median(conv), size


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="in-process repetitions per depth (median reported)")
    parser.add_argument("--calls", type=int, default=300, help="stdio calls per tool (alternating)")
    args = parser.parse_args()

    rows = in_process(args.repeats)
    print("In-process walk of a conv3x3/ReLU stack on [16, 64, 64] (median ms; JSON dicts in, validated, report out)")
    print(table(["layers", "shape_calculator ms", "us/layer", "receptive_field ms", "parameter_count ms"], rows))
    per_layer = [float(r[2]) for r in rows]
    print(f"cost per layer 100 -> 10,000 layers: {per_layer[0]:.1f} -> {per_layer[-1]:.1f} us "
          f"(x{per_layer[-1] / per_layer[0]:.2f}; 1.0 = linear); 1,000 layers: {rows[1][1]} ms (target < 20 ms)")

    walk_p50, conv_p50, size = anyio.run(over_stdio, args.calls)
    print()
    print(f"Over stdio (python -m server), {args.calls} alternating calls each, p50:")
    print(table(["call", "p50 ms", "ratio"], [
        ["conv_output_size (one conv)", f"{conv_p50 * 1e3:.3f}", "1.00"],
        ["shape_calculator (VGG16, 38 layers)", f"{walk_p50 * 1e3:.3f}", f"{walk_p50 / conv_p50:.2f}"],
    ]))
    print(f"target ratio <= 1.3; VGG16 result text {size:,} chars plus structured content")


if __name__ == "__main__":
    main()
