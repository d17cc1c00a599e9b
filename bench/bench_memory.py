"""What the memory block costs: shape_calculator with it (the default) and without it (memory=False), interleaved call
by call in one run so machine noise hits both alike, on the reference nets and small ones; and the memory pass alone.

Run: python bench/bench_memory.py [--repeats 400] [--instructions]
Target: the memory block adds < 10% to shape_calculator's time on ResNet-50 (ratio of medians, and the median of the
per-pair ratios, both < 1.10). Pure Python (no numpy or torch is imported), so thread settings do not matter here.
--instructions also counts CPU instructions under valgrind (cachegrind, no cache simulation), where present: the same
ratio without the noise of a shared machine (cache misses are not in it).
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from skills import zoo  # noqa: E402
from skills.memory import memory  # noqa: E402
from skills.walk import shape_calculator, walk  # noqa: E402

NETS = {
    "ResNet-50 [3, 224, 224]": ([3, 224, 224], zoo.resnet50()),
    "VGG16 [3, 224, 224]": ([3, 224, 224], zoo.vgg16()),
    "MobileNetV2 [3, 224, 224]": ([3, 224, 224], zoo.mobilenet_v2()),
    "lesson exercise (4 convs) [1, 128, 128]": ([1, 128, 128], zoo.lesson_exercise()),
    "one conv [3, 32, 32]": ([3, 32, 32], [zoo.conv(16, 3)]),
}


def interleaved(shape: list[int], layers: list[dict], repeats: int) -> tuple[float, float, float, float]:
    """(median ms without, median ms with, ratio of the medians, median of per-pair ratios)."""
    without, with_memory, pairs = [], [], []
    for _ in range(20):  # warm-up
        shape_calculator(shape, layers, memory=False)
        shape_calculator(shape, layers)
    for r in range(repeats):
        # alternate which goes first, so a slow moment is shared and neither always runs on a warm cache
        calls = ((False, True) if r % 2 else (True, False))
        took = {}
        for flag in calls:
            start = time.perf_counter()
            shape_calculator(shape, layers, memory=flag)
            took[flag] = time.perf_counter() - start
        without.append(took[False])
        with_memory.append(took[True])
        pairs.append(took[True] / took[False])
    a, b = statistics.median(without), statistics.median(with_memory)
    return a * 1e3, b * 1e3, b / a, statistics.median(pairs)


def alone(shape: list[int], layers: list[dict], repeats: int) -> float:
    """Median us of the memory pass by itself on a walk made once."""
    done = walk(shape, layers)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        memory(done)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def child(name: str, flag: str, calls: int) -> None:
    """Under valgrind: warm up, then `calls` shape_calculator calls with memory on, off, or none at all."""
    shape, layers = NETS[name]
    for _ in range(3):
        shape_calculator(shape, layers)
    if flag != "none":
        for _ in range(calls):
            shape_calculator(shape, layers, memory=flag == "with")


def instructions(name: str, flag: str, calls: int) -> int:
    """CPU instructions (valgrind's I refs) of a child run."""
    run = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", sys.executable, __file__,
         "--child", name, flag, str(calls)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    return int(re.search(r"I\s+refs:\s+([\d,]+)", run.stderr).group(1).replace(",", ""))


def counted(calls: int = 20) -> list[list[str]]:
    rows = []
    for name in NETS:
        base = instructions(name, "none", 0)
        without = (instructions(name, "without", calls) - base) / calls
        with_memory = (instructions(name, "with", calls) - base) / calls
        rows.append([name, f"{without / 1e6:.3f}", f"{with_memory / 1e6:.3f}", f"{with_memory / without:.3f}"])
    return rows


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=400, help="interleaved pairs per network (medians reported)")
    parser.add_argument("--instructions", action="store_true", help="also count instructions under valgrind")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    rows = []
    for name, (shape, layers) in NETS.items():
        a, b, ratio, pair = interleaved(shape, layers, args.repeats)
        rows.append([name, str(len(walk(shape, layers).order)), f"{a:.3f}", f"{b:.3f}", f"{ratio:.3f}", f"{pair:.3f}",
                     f"{alone(shape, layers, args.repeats):.1f}"])
    print(f"shape_calculator without the memory block (memory=False) and with it, {args.repeats} interleaved pairs, median ms")
    print(table(["network", "records", "without ms", "with ms", "ratio", "pair ratio", "memory() alone us"], rows))
    resnet = rows[0]
    verdict = "met" if float(resnet[4]) < 1.10 and float(resnet[5]) < 1.10 else "NOT met"
    print(f"target: ResNet-50 ratio < 1.10: {resnet[4]} (pair ratio {resnet[5]}): {verdict}")
    if args.instructions:
        if shutil.which("valgrind") is None:
            print("\n--instructions: valgrind is not installed (apt-get install valgrind), skipped")
            return
        print("\nCPU instructions per shape_calculator call (valgrind cachegrind, 20 calls each, M = 1e6)")
        print(table(["network", "without M", "with M", "ratio"], counted()))


if __name__ == "__main__":
    main()
