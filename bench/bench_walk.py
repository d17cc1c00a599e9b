"""The network walk's cost: in-process by depth (100, 1,000, 10,000 layers), and shape_calculator on VGG16 over stdio
against conv_output_size in the same server and run.

Run: python bench/bench_walk.py [--repeats 20] [--calls 300]
Pure Python on both sides (no numpy or torch is imported), so thread settings do not matter here.
Targets: 1,000 layers under 20 ms in-process, cost linear in depth; VGG16 p50 within 1.3x of conv_output_size's p50.
"""

import argparse
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
            ("shape_calculator", lambda layers=layers: shape_calculator([16, 64, 64], layers)),
            ("receptive_field", lambda layers=layers: receptive_field([16, 64, 64], layers, output_position=[5, 5])),
            ("parameter_count", lambda layers=layers: parameter_count(layers, input_shape=[16, 64, 64])),
        ):
            call()  # warm-up
            samples = []
            for _ in range(repeats if depth < 10_000 else max(3, repeats // 5)):
                start = time.perf_counter()
                call()
                samples.append(time.perf_counter() - start)
            timings[name] = statistics.median(samples)
            if name == "shape_calculator":
                fastest = min(samples)
        sc = timings["shape_calculator"]
        rows.append([f"{depth:,}", f"{sc * 1e3:.2f}", f"{fastest * 1e3:.2f}", f"{sc / depth * 1e6:.1f}",
                     f"{timings['receptive_field'] * 1e3:.2f}", f"{timings['parameter_count'] * 1e3:.2f}"])
    return rows


async def over_stdio(calls: int) -> dict[str, float]:
    """p50 seconds per call, the calls alternating in one server so machine noise hits all alike."""
    targets = {
        "conv_output_size (one conv)": ("conv_output_size", CONV_ARGS),
        "shape_calculator, one conv layer": ("shape_calculator", {"input_shape": [3, 224, 224], "layers": zoo.vgg16()[:1]}),
        "shape_calculator, VGG16 as JSON layers": ("shape_calculator", {"input_shape": [3, 224, 224], "layers": zoo.vgg16()}),
        "shape_calculator, VGG16 as paper notation": ("shape_calculator", {"input_shape": [3, 224, 224], "spec": zoo.VGG16_NOTATION}),
    }
    samples: dict[str, list[float]] = {name: [] for name in targets}
    async with Client(SERVER) as client:
        for _ in range(20):  # warm-up
            for tool, arguments in targets.values():
                await client.call_tool(tool, arguments)
        for _ in range(calls):
            for name, (tool, arguments) in targets.items():
                start = time.perf_counter()
                result = await client.call_tool(tool, arguments)
                samples[name].append(time.perf_counter() - start)
                assert not result.is_error, result
                if "VGG16" in name:
                    assert result.structured_content["total_params"] == 138_357_544, result
    return {name: statistics.median(values) for name, values in samples.items()}


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
    print(table(["layers", "shape_calculator ms", "(min)", "us/layer", "receptive_field ms", "parameter_count ms"], rows))
    per_layer = [float(r[3]) for r in rows]
    print(f"cost per layer 100 -> 10,000 layers: {per_layer[0]:.1f} -> {per_layer[-1]:.1f} us "
          f"(x{per_layer[-1] / per_layer[0]:.2f}; 1.0 = linear); 1,000 layers: {rows[1][1]} ms (target < 20 ms)")

    p50 = anyio.run(over_stdio, args.calls)
    base = p50["conv_output_size (one conv)"]
    print()
    print(f"Over stdio (python -m server), {args.calls} calls each, alternating in one session, p50:")
    print(table(["call", "p50 ms", "ratio"], [[name, f"{v * 1e3:.3f}", f"{v / base:.2f}"] for name, v in p50.items()]))
    print("target: VGG16 ratio <= 1.3")


if __name__ == "__main__":
    main()
