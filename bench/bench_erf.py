"""The effective receptive field (skills.erf, NumPy) against torch autograd on the same net, weights and input, in one run.

    python bench/bench_erf.py [--repeats 7]

What is timed: ours is erf_job(...).result() (walk, plan, forward + backward, the report); torch is net(x), then the
channel sum at the centre pixel .backward(), reading x.grad. Both in float64 (the same answer: the relative difference
is printed); torch float32 is shown too, for scale. Single-threaded both: OMP/OPENBLAS/MKL_NUM_THREADS=1 are set before
numpy is imported, and torch.set_num_threads(1). Calls alternate (a busy machine slows both alike); figures are
medians, the ratio the median of the per-pair ratios. The headline case is the issue's: a 20-layer 3x3 net on 64x64
(target < 1 s); the others are small or unflattering on purpose (overhead-bound nets, a 1-D net, a residual stack,
the linear uniform case where we skip the forward pass torch still runs). The last line times the tool itself through
the in-memory MCP client on the headline case.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from skills.erf import erf_job  # noqa: E402

torch.set_num_threads(1)


def conv(c, k=3, **kw):
    return {"type": "conv2d", "out_channels": c, "kernel_size": k, "padding": k // 2, **kw}


def chain(n, c, act=True, nd=2):
    t = "conv2d" if nd == 2 else "conv1d"
    layers = []
    for _ in range(n):
        layers.append({"type": t, "out_channels": c, "kernel_size": 3, "padding": 1})
        if act:
            layers.append({"type": "relu"})
    return layers


def residual_stack(blocks, c):
    body = [conv(c), {"type": "batchnorm2d"}, {"type": "relu"}, conv(c), {"type": "batchnorm2d"}]
    return [conv(c), {"type": "relu"}] + [{"type": "residual", "body": body}, {"type": "relu"}] * blocks


CASES = [
    # name, input shape, layers, weights ("random" means: torch's init, copied into ours)
    ("20x conv3x3+ReLU, C=16, 64x64 (headline)", [16, 64, 64], chain(20, 16), "random"),
    ("20x conv3x3+ReLU, C=32, 64x64", [32, 64, 64], chain(20, 32), "random"),
    ("20x conv3x3, C=1, 64x64, uniform (linear: no forward)", [1, 64, 64], chain(20, 1, act=False), "uniform"),
    ("3x conv3x3+ReLU, C=4, 16x16 (overhead)", [4, 16, 16], chain(3, 4), "random"),
    ("8 residual blocks + BN, C=16, 32x32", [16, 32, 32], residual_stack(8, 16), "random"),
    ("1-D 10x conv3+ReLU, C=16, L=512", [16, 512], chain(10, 16, nd=1), "random"),
]


class Residual(torch.nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x) + x


def build(layers, c, nd, dtype):
    """The spec as torch modules (names follow the spec's paths, so the state_dict is our `weights`)."""
    nn = torch.nn
    mods = []
    for layer in layers:
        t = layer["type"]
        if t in ("conv2d", "conv1d"):
            cls = nn.Conv2d if t == "conv2d" else nn.Conv1d
            mods.append(cls(c, layer["out_channels"], layer["kernel_size"], padding=layer["padding"]))
            c = layer["out_channels"]
        elif t == "relu":
            mods.append(nn.ReLU())
        elif t == "batchnorm2d":
            mods.append(nn.BatchNorm2d(c))
        elif t == "residual":
            mods.append(Residual(build(layer["body"], c, nd, dtype)))
    return nn.Sequential(*mods).to(dtype).eval()


def torch_erf(net, x):
    xt = x.clone().requires_grad_()
    y = net(xt)[0]
    centre = tuple(s // 2 for s in y.shape[1:])
    y[(slice(None),) + centre].sum().backward()
    return xt.grad[0]


def timed_pair(f, g, repeats):
    f(), g()
    tf, tg = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        tf.append(time.perf_counter() - t)
        t = time.perf_counter()
        g()
        tg.append(time.perf_counter() - t)
    return statistics.median(tf), statistics.median(tg), statistics.median(a / b for a, b in zip(tf, tg, strict=True))


def timed(f, repeats):
    f()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rows = []
    headline = None
    for name, shape, layers, weights in CASES:
        nd = len(shape) - 1
        torch.manual_seed(0)
        net64 = build(layers, shape[0], nd, torch.float64)
        if weights == "uniform":
            with torch.no_grad():
                for p in net64.parameters():
                    p.fill_(1.0)
        net32 = build(layers, shape[0], nd, torch.float32)
        net32.load_state_dict(net64.state_dict())
        state = {k: v.numpy() for k, v in net64.state_dict().items()}
        x = np.random.default_rng(0).standard_normal(shape)
        x64 = torch.from_numpy(x[None].copy())
        x32 = x64.float()
        given = "uniform" if weights == "uniform" else state

        def ours(given=given, x=x, shape=shape, layers=layers):
            return erf_job(shape, layers, weights=given, x=x, inline_elements=None).result()

        out = ours()
        ref = torch_erf(net64, x64).numpy()
        rel = float(np.abs(out.gradient - ref).max() / np.abs(ref).max())
        t_ours, t_torch, ratio = timed_pair(ours, lambda net=net64, x=x64: torch_erf(net, x), args.repeats)
        t32 = timed(lambda net=net32, x=x32: torch_erf(net, x), args.repeats)
        gmacs = out.report.macs / 1e9
        rows.append([name, f"{t_ours * 1e3:.1f}", f"{t_torch * 1e3:.1f}", f"{ratio:.2f}", f"{t32 * 1e3:.1f}",
                     f"{t_ours / t32:.2f}", f"{out.report.macs:,}", f"{2 * gmacs / t_ours:.2f}", f"{rel:.1e}"])
        if headline is None:
            headline = (shape, layers, state, t_ours)
    print("ERF of the centre pixel: ours (erf_job, NumPy float64) vs torch autograd, single-threaded, median ms")
    print(table(["case", "ours ms", "torch f64 ms", "ours/torch f64", "torch f32 ms", "ours/torch f32", "our MACs",
                 "our GFLOP/s", "max rel diff"], rows))
    shape, layers, state, t_ours = headline
    print(f"target: the headline case under 1 s: {t_ours:.3f} s ({'met' if t_ours < 1 else 'NOT met'})")

    import anyio
    from mcp import Client

    from server.app import build_server

    weights = {k: v.tolist() for k, v in state.items()}

    async def over_mcp():
        async with Client(build_server()) as client:
            await client.call_tool("effective_receptive_field", {"input_shape": shape, "layers": layers, "weights": "random"})
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                r = await client.call_tool("effective_receptive_field", {"input_shape": shape, "layers": layers, "weights": weights})
                times.append(time.perf_counter() - t)
                assert not r.is_error, r.content[0].text
            return statistics.median(times)

    t_mcp = anyio.run(over_mcp)
    print(f"the tool over the in-memory MCP client, headline case with its weights given as JSON lists: {t_mcp * 1e3:.1f} ms "
          f"({t_mcp / t_ours:.2f}x the in-process call; the rest is validating and converting ~{sum(v.size for v in state.values()):,} "
          "weights)")


if __name__ == "__main__":
    main()
