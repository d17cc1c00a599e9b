"""Model files: an .onnx file analysed end to end (skills.onnx_model.analyse: read, shape inference, conversion, the
walk, completeness) against onnx.load alone, onnx.load + onnx.shape_inference.infer_shapes, and onnx-tool's profile
(when it is installed; it is no dependency) of the same file, in one run, from a 30 KB CNN to ResNet-50 (100 MB).

Run: python bench/bench_onnx.py [--repeats 5] [--vgg16]
Needs torch (the test extra) to export the models (torch.onnx.export(..., dynamo=False)). Each side of each
comparison runs in its own fresh process, warmed up on a tiny model (imports done), so its peak RSS growth is its own
(VmHWM reset through /proc/self/clear_refs). Times are medians of --repeats calls after one cold call.
Targets: ResNet-50 end to end <= 1.5x onnx.load's time; RSS growth <= 2x the file size.
"""

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

SIDES = ("ours", "load", "infer", "onnx_tool")
LABELS = {"ours": "analyse (ours)", "load": "onnx.load", "infer": "onnx.load + infer_shapes", "onnx_tool": "onnx-tool profile"}


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def measure(side: str, path: str, repeats: int, warm: str) -> dict:
    """In this (fresh) process: warm up on `warm`, then one cold and `repeats` timed calls of `side` on `path`."""
    import onnx

    from skills.onnx_model import analyse

    def run(p: str):
        if side == "ours":
            return analyse("shape_calculator", p, roots=[os.path.dirname(p)], max_bytes=None)
        if side == "load":
            return onnx.load(p, load_external_data=False)
        if side == "infer":
            return onnx.shape_inference.infer_shapes(onnx.load(p, load_external_data=False))
        import onnx_tool

        with contextlib.redirect_stdout(io.StringIO()) as out:
            onnx_tool.model_profile(p)
        return out.getvalue()

    run(warm)
    base = _rss_kb("VmRSS")
    reset = _reset_peak()
    start = time.perf_counter()
    result = run(path)
    cold = time.perf_counter() - start
    peak = _rss_kb("VmHWM") - base if reset else None
    figures = {}
    if side == "ours":
        figures = {"params": result.total_params, "macs": result.total_macs,
                   "complete": all(getattr(result.completeness, k).status == "complete" for k in ("shapes", "params", "macs", "receptive_field"))}
    elif side == "onnx_tool":
        total = [line for line in result.splitlines() if line.startswith("Total")][-1].split()
        figures = {"macs": int(total[2].replace(",", "")), "params": int(total[6].replace(",", ""))}
    del result
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(path)
        times.append(time.perf_counter() - start)
    return {"cold": cold, "median": statistics.median(times), "peak_kb": peak, **figures}


def in_subprocess(side: str, path: str, repeats: int, warm: str) -> dict | None:
    proc = subprocess.run([sys.executable, __file__, "--measure", side, path, str(repeats), warm],
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        if side == "onnx_tool":
            return None
        raise RuntimeError(f"{side} on {path} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def export_models(folder: Path, vgg16: bool) -> list[tuple[str, Path]]:
    """The benchmark's models, exported with dynamo=False (training mode keeps BatchNorm nodes), smallest first."""
    import torch
    from test_onnx_model import UNet, resnet18  # noqa: F401  (resnet18: the spec; UNet: a graph with skips)
    from torch_reference import build

    from skills import zoo

    models = [
        ("lesson CNN [1, 1, 128, 128]", zoo.lesson_exercise(), [1, 1, 128, 128], True),
        ("U-Net [1, 1, 64, 64]", None, [1, 1, 64, 64], True),
        ("MobileNetV2 224", zoo.mobilenet_v2(), [1, 3, 224, 224], True),
        ("ResNet-18 224", resnet18(), [1, 3, 224, 224], True),
        ("ResNet-50 224", zoo.resnet50(), [1, 3, 224, 224], True),
        ("ResNet-50 224, eval export", zoo.resnet50(), [1, 3, 224, 224], False),
    ]
    if vgg16:
        models.append(("VGG16 224", zoo.vgg16(), [1, 3, 224, 224], True))
    out = []
    for name, spec, shape, train in models:
        net = UNet.module() if spec is None else build(spec, shape)
        path = folder / (name.split(" [")[0].split(",")[0].replace(" ", "_").replace("-", "") + ("" if train else "_eval") + ".onnx")
        kwargs = {"training": torch.onnx.TrainingMode.TRAINING} if train else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, torch.zeros(shape), str(path), dynamo=False, **kwargs)
        out.append((name, path))
    return out


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        side, path, repeats, warm = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
        print(json.dumps(measure(side, path, repeats, warm)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per side and model (median reported)")
    parser.add_argument("--vgg16", action="store_true", help="also VGG16 (553 MB: over the server's default max_model_bytes)")
    args = parser.parse_args()
    try:
        import onnx_tool  # noqa: F401

        sides = SIDES
    except ImportError:
        sides = SIDES[:3]
        print("onnx-tool is not installed (pip install onnx-tool): comparing against onnx.load and infer_shapes only")
    with tempfile.TemporaryDirectory() as tmp:
        models = export_models(Path(tmp), args.vgg16)
        warm = str(models[0][1])
        results = {}
        for name, path in models:
            results[name] = {side: in_subprocess(side, str(path), args.repeats, warm) for side in sides}
            results[name]["mb"] = path.stat().st_size / 1e6
        sizes = {name: Path(p).stat().st_size for name, p in models}

    head = ["model", "file MB", *[f"{LABELS[s]} ms" for s in sides], "ours / onnx.load", "ours / infer_shapes"]
    if "onnx_tool" in sides:
        head.append("ours / onnx-tool")
    rows = []
    for name, r in results.items():
        ours = r["ours"]["median"]
        row = [name, f"{r['mb']:.2f}", *[f"{r[s]['median'] * 1e3:.1f}" if r.get(s) else "-" for s in sides],
               f"{ours / r['load']['median']:.2f}", f"{ours / r['infer']['median']:.2f}"]
        if "onnx_tool" in sides:
            row.append(f"{ours / r['onnx_tool']['median']:.3f}" if r.get("onnx_tool") else "-")
        rows.append(row)
    print(f"Time, median of {args.repeats} warm calls (each side in its own process, warmed up on the smallest model):")
    print(table(head, rows))
    print()
    mem_head = ["model", "file MB", *[f"{LABELS[s]} peak MB" for s in sides], "ours peak / file", "onnx.load peak / file"]
    mem = []
    for name, r in results.items():
        size = sizes[name]
        peaks = [r[s]["peak_kb"] * 1024 if r.get(s) and r[s]["peak_kb"] is not None else None for s in sides]
        mem.append([name, f"{size / 1e6:.2f}", *[f"{p / 1e6:.1f}" if p is not None else "-" for p in peaks],
                    f"{peaks[0] / size:.3f}" if peaks[0] is not None else "-", f"{peaks[1] / size:.2f}" if peaks[1] is not None else "-"])
    print("Peak RSS growth of one call (VmHWM after the call minus VmRSS before it):")
    print(table(mem_head, mem))
    print()
    cold = [[name, *[f"{r[s]['cold'] * 1e3:.1f}" if r.get(s) else "-" for s in sides]] for name, r in results.items()]
    print("First call on the file in a warm process (ms):")
    print(table(["model", *[LABELS[s] for s in sides]], cold))
    print()
    figures = [["model", "params (ours)", "MACs (ours)", "complete", *(["params (onnx-tool)", "MACs (onnx-tool)"] if "onnx_tool" in sides else [])]]
    for name, r in results.items():
        row = [name, f"{r['ours']['params']:,}", f"{r['ours']['macs']:,}", str(r["ours"]["complete"])]
        if "onnx_tool" in sides:
            t = r.get("onnx_tool")
            row += [f"{t['params']:,}", f"{t['macs']:,}"] if t else ["-", "-"]
        figures.append(row)
    print("The figures (onnx-tool counts BatchNorm's mean and var as params and BatchNorm, ReLU and Add as MACs;")
    print("ours are PyTorch's params and torchvision's MACs: conv, transposed conv, linear and MatMul, bias excluded):")
    print(table(figures[0], figures[1:]))
    r50 = results["ResNet-50 224"]
    ratio = r50["ours"]["median"] / r50["load"]["median"]
    growth = (r50["ours"]["peak_kb"] or 0) * 1024 / sizes["ResNet-50 224"]
    print()
    print(f"ResNet-50: end to end {ratio:.2f}x onnx.load's time (target <= 1.5), peak RSS growth {growth:.3f}x the file (target <= 2)")


if __name__ == "__main__":
    main()
