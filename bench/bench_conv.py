"""skills.conv (NumPy) against torch CPU, both single-threaded, in one run: forward, backward, GEMM rate, peak memory.

    python bench/bench_conv.py [--repeats 15]

Threads: OMP/OPENBLAS/MKL_NUM_THREADS=1 are set before numpy is imported, and torch.set_num_threads(1).
Both libraries run in the same process, float32, their calls alternating (a busy machine slows both alike);
figures are medians and the ratio is the median of the per-pair ratios.
Where the environment sets OPENBLAS_CORETYPE (a workaround for old OpenBLAS builds on some CPUs) numpy may run a
slower kernel: benchmark with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_conv.py`; the
BLAS kernel actually used is printed (threadpoolctl when installed, else numpy's build config).
Targets (issue 4): forward <= 2x torch on both shapes; conv >= 50% of numpy's own float32 matmul rate on the
second shape; peak extra memory about one image's column buffer; backward <= 3x torch autograd.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from skills.conv import conv2d, conv2d_backward, conv_geometry  # noqa: E402

CASES = [
    # name, x shape, weight shape, stride, padding
    ("stem 7x7/2", (1, 3, 224, 224), (64, 3, 7, 7), 2, 3),
    ("resnet 3x3", (8, 64, 56, 56), (64, 64, 3, 3), 1, 1),
]


def timeit(fn, repeats: int) -> float:
    """Median seconds of fn() over repeats, after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def timeit_pair(f, g, repeats: int) -> tuple[float, float, float]:
    """Median seconds of f() and of g(), called alternately so a busy machine slows both alike, and the median ratio."""
    f(), g(), f(), g()
    tf, tg = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        tf.append(time.perf_counter() - t)
        t = time.perf_counter()
        g()
        tg.append(time.perf_counter() - t)
    return statistics.median(tf), statistics.median(tg), statistics.median(a / b for a, b in zip(tf, tg, strict=True))


def peak_extra_bytes(fn) -> int:
    """Peak bytes numpy allocated during fn(), as tracemalloc sees them (numpy reports its buffers to it)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def sliding_window_baseline(x, w, stride, padding):
    """The straightforward im2col for scale: sliding_window_view + reshape (copies in the wrong order)."""
    from numpy.lib.stride_tricks import sliding_window_view

    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = sliding_window_view(xp, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]  # N C Ho Wo kh kw
    n, c, ho, wo, kh, kw = win.shape
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n, ho * wo, c * kh * kw)
    out = cols @ w.reshape(w.shape[0], -1).T
    return out.transpose(0, 2, 1).reshape(n, -1, ho, wo)


def kernel_offset(x, w, stride, padding):
    """The alternative formulation: for each (kh, kw), out += W[:, :, kh, kw] @ shifted input (no column matrix)."""
    n, c, h, wd = x.shape
    co, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, co, ho * wo), x.dtype)
    shifted = np.empty((c, ho, wo), x.dtype)
    for b in range(n):
        for i in range(kh):
            for j in range(kw):
                shifted[...] = xp[b, :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]
                out[b] += w[:, :, i, j] @ shifted.reshape(c, -1)
    return out.reshape(n, co, ho, wo)


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info

        infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        return "; ".join(
            f"{i['internal_api']} {i.get('version')} kernel {i.get('architecture')} threads {i['num_threads']}"
            for i in infos
        )
    except ImportError:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name')} {blas.get('version')} (install threadpoolctl to see the kernel in use)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    F = torch.nn.functional
    print(
        f"numpy {np.__version__}, torch {torch.__version__}; single-threaded both (torch threads {torch.get_num_threads()})"
    )
    print(f"BLAS: {blas_info()}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if os.environ.get(var):
            print(f"note: {var}={os.environ[var]} is set; numpy may run a slower kernel (see the docstring)")
    print()
    rng = np.random.default_rng(0)
    rows = []
    for name, xs, ws, stride, padding in CASES:
        x = rng.standard_normal(xs, dtype=np.float32)
        w = rng.standard_normal(ws, dtype=np.float32)
        b = rng.standard_normal(ws[0], dtype=np.float32)
        geom = conv_geometry(xs, ws, stride, padding)
        flops = 2 * geom.macs
        xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
        with torch.no_grad():
            t_np, t_torch, ratio = timeit_pair(
                lambda x=x, w=w, b=b, s=stride, p=padding: conv2d(x, w, b, s, p),
                lambda xt=xt, wt=wt, bt=bt, s=stride, p=padding: F.conv2d(xt, wt, bt, s, p),
                args.repeats,
            )
            ref = F.conv2d(xt, wt, bt, stride, padding).numpy()
        err = float(np.max(np.abs(conv2d(x, w, b, stride, padding) - ref)) / np.max(np.abs(ref)))
        t_base = timeit(
            lambda x=x, w=w, s=stride, p=padding: sliding_window_baseline(x, w, s, p), max(3, args.repeats // 3)
        )
        t_koff = timeit(lambda x=x, w=w, s=stride, p=padding: kernel_offset(x, w, s, p), max(3, args.repeats // 3))
        # numpy's own float32 GEMM of the same dims: [C_out, C_in*kH*kW] @ [C_in*kH*kW, H_out*W_out], per image
        a = rng.standard_normal((geom.c_out, geom.column_rows), dtype=np.float32)
        m = rng.standard_normal((geom.column_rows, geom.h_out * geom.w_out), dtype=np.float32)
        o = np.empty((geom.c_out, geom.h_out * geom.w_out), np.float32)
        # conv and the same GEMMs (one per image) alternate, so the share is measured under the same load
        t_conv, t_mm, conv_over_mm = timeit_pair(
            lambda x=x, w=w, b=b, s=stride, p=padding: conv2d(x, w, b, s, p),
            lambda a=a, m=m, o=o, n=geom.n: [np.matmul(a, m, out=o) for _ in range(n)],
            args.repeats,
        )
        gemm_rate = flops / t_mm
        conv_rate = flops / t_conv
        share = 1 / conv_over_mm
        out_bytes = ref.nbytes
        peak = peak_extra_bytes(lambda x=x, w=w, b=b, s=stride, p=padding: conv2d(x, w, b, s, p))
        col_bytes = geom.column_rows * geom.h_out * geom.w_out * 4
        rows.append(
            dict(
                name=name,
                xs=xs,
                ws=ws,
                ratio=ratio,
                t_np=t_np,
                t_torch=t_torch,
                t_base=t_base,
                t_koff=t_koff,
                conv_rate=conv_rate,
                gemm_rate=gemm_rate,
                share=share,
                peak=peak,
                out_bytes=out_bytes,
                col_bytes=col_bytes,
                err=err,
            )
        )

    mib = 1 << 20
    print(
        f"{'forward':<12} {'numpy ms':>9} {'torch ms':>9} {'ratio':>6} {'(target':>8} {'sliding-window':>15} {'kernel-offset':>14} {'rel err':>8}"
    )
    for r in rows:
        print(
            f"{r['name']:<12} {r['t_np'] * 1e3:9.2f} {r['t_torch'] * 1e3:9.2f} {r['ratio']:6.2f} {'<= 2x)':>8} "
            f"{r['t_base'] * 1e3:7.2f} ({r['t_base'] / r['t_torch']:.1f}x) {r['t_koff'] * 1e3:7.2f} ({r['t_koff'] / r['t_torch']:.1f}x) "
            f"{r['err']:8.1e}  {'OK' if r['ratio'] <= 2 else 'MISSED'}  {list(r['xs'])} * {list(r['ws'])}"
        )
    print()
    print(f"{'GEMM rate':<12} {'conv GFLOP/s':>12} {'matmul GFLOP/s':>15} {'share':>6} (target >= 50% on resnet 3x3)")
    for r in rows:
        print(f"{r['name']:<12} {r['conv_rate'] / 1e9:12.1f} {r['gemm_rate'] / 1e9:15.1f} {r['share']:6.0%}")
    print()
    print(f"{'memory':<12} {'peak MiB':>9} {'output MiB':>11} {'extra MiB':>10} {'one image columns MiB':>22}")
    for r in rows:
        print(
            f"{r['name']:<12} {r['peak'] / mib:9.2f} {r['out_bytes'] / mib:11.2f} {(r['peak'] - r['out_bytes']) / mib:10.2f} "
            f"{r['col_bytes'] / mib:22.2f}"
        )
    print()

    # backward on the second shape: grad_input, grad_weight and grad_bias, given grad_output
    _, xs, ws, stride, padding = CASES[1]
    x = rng.standard_normal(xs, dtype=np.float32)
    w = rng.standard_normal(ws, dtype=np.float32)
    b = rng.standard_normal(ws[0], dtype=np.float32)
    geom = conv_geometry(xs, ws, stride, padding)
    go = rng.standard_normal(geom.output_shape, dtype=np.float32)
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, stride, padding)
    got = torch.from_numpy(go)
    t_np, t_torch, ratio = timeit_pair(
        lambda: conv2d_backward(x, w, go, b, stride, padding),
        lambda: torch.autograd.grad(y, (xt, wt, bt), got, retain_graph=True),
        max(3, args.repeats // 2),
    )
    gx, gw, gb = torch.autograd.grad(y, (xt, wt, bt), got, retain_graph=True)
    gi, gwn, gbn = conv2d_backward(x, w, go, b, stride, padding)
    err = max(
        float(np.max(np.abs(a - r.numpy())) / np.max(np.abs(r.numpy()))) for a, r in ((gi, gx), (gwn, gw), (gbn, gb))
    )
    peak = peak_extra_bytes(lambda: conv2d_backward(x, w, go, b, stride, padding))
    print(
        f"{'backward':<12} {'numpy ms':>9} {'torch ms':>9} {'ratio':>6} {'(target':>8} {'rel err':>8} {'peak MiB':>9}"
    )
    print(
        f"{CASES[1][0]:<12} {t_np * 1e3:9.2f} {t_torch * 1e3:9.2f} {ratio:6.2f} {'<= 3x)':>8} {err:8.1e} "
        f"{peak / (1 << 20):9.2f}  {'OK' if ratio <= 3 else 'MISSED'}  (torch: autograd.grad of x, weight, bias)"
    )


if __name__ == "__main__":
    main()
