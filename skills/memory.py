"""Memory of a walked network, in a dtype and batch: params, buffers, every layer's output, the inference peak, and
what one training step holds (the tensors autograd saves for backward, gradients, optimizer state), with torchinfo's
summary figures beside them so users can compare.

One pass over the walk's records in topological order (a block's layers before its join) gives each record's output
a storage: new, or its input's (in-place activations, flatten and unflatten views, identity, dropout where it returns
its input). The inference peak replays that order freeing each storage after its last consumer. The training rules
(`_KIND`, one code per layer type, and the branches of `memory`) are what torch 2.x's autograd saves on CPU, read off
`torch.autograd.graph.saved_tensors_hooks` (tests/test_memory.py checks every type against it). The pass runs on every
shape_calculator call, so its loop is written for speed (bench/bench_memory.py: ~8% of a ResNet-50 walk).
"""

from __future__ import annotations

from itertools import accumulate, compress
from math import prod
from operator import attrgetter
from typing import Any

from .errors import OptionError
from .layers import Rec, T, _broadcast
from .reports import MEMORY_FIELDS, MemoryReport, construct

DTYPES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}
"""Bytes per element of params, floating buffers and activations."""
MODES = ("inference", "training")
OPTIMIZERS = {"sgd": 0, "sgd_momentum": 1, "adam": 2, "adamw": 2}
"""State tensors per parameter (momentum_buffer; exp_avg and exp_avg_sq). Adam and AdamW also keep `step`, a float32
scalar tensor per parameter tensor, whatever the params' dtype."""
INT64 = 8  # num_batches_tracked, max-pool indices
_PATHS = attrgetter("paths")
MB = 1e6  # torchinfo's megabyte

MODEL = (
    "Bytes are elements x the dtype's size (float32 4, float16 and bfloat16 2, int8 1; num_batches_tracked and max-pool "
    "indices are int64) at batch_size. activation_bytes: the sum of every layer's output (layers inside blocks "
    "included, a residual add or concat once), as forward hooks on every layer count them: views and in-place results "
    "count as outputs, the input does not. inference_peak_bytes: the most bytes of distinct tensors alive at once when "
    "the layers run in order, the input included, each tensor freed after its last consumer (in-place activations, "
    "flatten, identity and eval-mode dropout share their input's storage): what a runtime without autograd holds "
    "beside params and buffers, the three together being total_bytes in mode inference (eager PyTorch may keep a "
    "block's input until the block returns). training_bytes: one step of training in the dtype (no float32 master "
    "weights as mixed precision keeps): params + buffers + a gradient per param + the optimizer's state (sgd none, "
    "sgd_momentum 1x params, adam and adamw 2x params and a float32 step per parameter tensor) + "
    "saved_for_backward_bytes, the distinct tensors torch 2.x's autograd keeps on CPU after a train-mode forward of an "
    "input that needs no gradient: inputs of convs, linears and norms, batch statistics, ReLU, sigmoid and softmax "
    "outputs, max-pool indices, dropout masks (CUDA keeps them as bool), the padded copy a conv with padding_mode other "
    "than zeros or an odd 'same' padding makes; layers before the first one with params keep nothing, and parameters "
    "autograd keeps are counted once, in params_bytes. Not counted: the loss and the output's gradient, activation "
    "gradients alive during backward, temporaries inside a layer in inference (conv workspace, im2col, that padded "
    "copy), intermediate products of a merge of more than two inputs in inference, the allocator's rounding and "
    "cache, the CUDA context (hundreds of MB per process), and int8 quantization scales. The residual add is out of "
    "place (torchvision's ResNet adds in place into its last BatchNorm's output). torchinfo_*: torchinfo's summary "
    "for the same input and dtype, MB = 1e6 bytes: 'Input size', 'Forward/backward pass size' (2 x the outputs of the "
    "layers with params only), 'Params size' (no buffers) and 'Estimated Total Size', their sum; torchinfo's input "
    "figure also holds the Python storage object's few dozen bytes."
)

MODEL_SHORT = (
    "Counted: params, buffers, every layer's output (activation_bytes), the live tensors at the worst point of one "
    "inference in order, each freed after its last consumer (inference_peak_bytes), and for training the gradients, "
    "optimizer state and the tensors autograd keeps for backward (saved_for_backward_bytes). Not counted: conv "
    "workspace and im2col, activation gradients during backward, allocator rounding, the CUDA context. torchinfo_*: "
    "torchinfo's summary figures, MB = 1e6 bytes. The full model: skills.memory.MODEL and the README's Memory section."
)
"""What each result says of its model (MODEL, 2.4 KB, is the whole statement: too long to send with every walk)."""

# One code per layer type: what autograd saves in a train-mode forward, and whether the output can share its input's
# storage (codes >= RELU: in place when asked; >= VIEW: always in eval mode). Absent types save nothing and make a new
# tensor: add, concat, residual, zero/constant/circular padding, nearest and linear upsampling, pixel and channel
# shuffles.
NOTHING, JOIN, MUL, X, Y, CONV, BATCHNORM, NORM, POOL, SOFTSIGN, TANHSHRINK, RELU, ACT_COPY, ACT_RESULT, VIEW, DROPOUT = range(16)
_KIND: dict[str, int] = {
    **dict.fromkeys(("residual", "concat", "add"), JOIN),  # several sources, nothing kept
    "mul": MUL,  # both factors
    **dict.fromkeys(("conv1d", "conv2d", "conv3d"), CONV),  # input (or the padded copy), weight
    **dict.fromkeys(("convtranspose1d", "convtranspose2d", "convtranspose3d", "linear", "prelu", "gelu", "softplus"), X),
    **dict.fromkeys(("avgpool1d", "avgpool2d", "avgpool3d"), X),
    **{f"{kind}pad{n}d": X for kind in ("reflection", "replication") for n in (1, 2, 3)},
    **dict.fromkeys(("sigmoid", "tanh", "softmax", "logsoftmax", "softmin"), Y),
    **dict.fromkeys(("batchnorm1d", "batchnorm2d", "batchnorm3d"), BATCHNORM),  # input, save_mean, save_invstd
    **dict.fromkeys(("instancenorm1d", "instancenorm2d", "instancenorm3d", "groupnorm", "layernorm"), NORM),
    **dict.fromkeys(("maxpool1d", "maxpool2d", "maxpool3d", "adaptivemaxpool1d", "adaptivemaxpool2d", "adaptivemaxpool3d",
                     "adaptiveavgpool1d", "adaptiveavgpool2d", "adaptiveavgpool3d", "upsample"), POOL),
    "softsign": SOFTSIGN, "tanhshrink": TANHSHRINK,
    "relu": RELU,  # its output; in place, the same storage
    # their input; in place, a copy of it (the input is overwritten and their backward needs it)
    **dict.fromkeys(("relu6", "hardtanh", "silu", "hardswish", "hardsigmoid", "mish"), ACT_COPY),
    **dict.fromkeys(("leakyrelu", "elu", "celu", "selu"), ACT_RESULT),  # their input; in place, their result
    **dict.fromkeys(("identity", "flatten", "unflatten"), VIEW),
    **dict.fromkeys(("dropout", "dropout1d", "dropout2d", "dropout3d", "alphadropout"), DROPOUT),
}


def _conv(rec: Rec) -> tuple[bool, int]:
    """(input saved, elements of a padded copy saved): padding_mode other than zeros pads into a copy (reflect and
    replicate padding keep their input too, when it needs a gradient); zeros padding 'same' with an odd total pads the
    extra pixel into a copy."""
    layer, x = rec.layer, rec.x
    if layer.padding_mode != "zeros":
        padded = rec.steps[0][1][4]  # the window runs over the padded map (skills.layers.conv)
        return layer.padding_mode != "circular", (x.n or 1) * x.c * prod(padded)
    if layer.padding == "same":
        k, _, before, d, sp = rec.steps[0][1]
        grown = [n + dd * (kk - 1) - 2 * b for n, kk, b, dd in zip(sp, k, before, d, strict=True)]
        if grown != list(sp):
            return False, (x.n or 1) * x.c * prod(grown)
    return True, 0


def _rare(kind: int, rec: Rec) -> tuple[bool, bool, int, int, int]:
    """What the less common layers save: (input, output, new elements scaled with the batch, fixed new elements, int64
    elements)."""
    x, layer = rec.x, rec.layer
    if kind == NORM:
        t, n, c = rec.type, x.n or 1, x.f if x.flat else x.c
        if t[:8] == "instance":  # batch norm over [1, N*C]: its statistics, running stats and weight repeated N times
            return True, False, n * c * (2 + (1 if layer.affine else 0) + (2 if layer.track_running_stats else 0)), 0, 0
        if t == "groupnorm":
            return True, False, 2 * n * layer.num_groups, 0, 0
        shape = layer.normalized_shape  # layernorm: mean and rstd per leading index
        return True, False, 2 * (x.elements() // (shape if shape.__class__ is int else prod(shape))), 0, 0
    if kind == POOL:
        t = rec.type
        if t[:3] == "max" or t[:11] == "adaptivemax":
            return True, False, 0, 0, rec.y.elements()  # input, indices
        if t == "upsample" and layer.mode != "area":
            return False, False, 0, 0, 0
        return any(s != 1 for s in rec.y.sp), False, 0, 0, 0  # adaptive average to all-1 sizes is a mean: nothing kept
    if kind == SOFTSIGN:
        return True, False, x.elements(), 0, 0  # input, 1 + |input|
    if kind == TANHSHRINK:
        return False, False, x.elements(), 0, 0  # tanh(input)
    if kind == DROPOUT:  # the mask, in the dtype (CPU draws it as the input's type; CUDA's fused kernel keeps a bool mask)
        p = layer.p
        if p == 0:
            return False, False, 0, 0, 0
        if p == 1:
            return False, False, 0, 1, 0  # a scalar zero
        if rec.type in ("dropout", "alphadropout"):
            return False, False, x.elements(), 0, 0
        return False, False, (x.n or 1) * (x.f if x.flat else x.c), 0, 0  # one draw per channel
    return False, False, 0, 0, 0


def options(x: T, dtype: Any, batch_size: Any, mode: Any, optimizer: Any) -> tuple[str, int, str, str]:
    """(dtype, batch, mode, optimizer) checked: errors name the value, the choices and the fix."""
    if dtype is None and batch_size is None and mode is None and optimizer is None:  # the defaults, on every call
        return "float32", x.n or 1, "inference", "sgd"
    if dtype is None:
        dtype = "float32"
    elif dtype.__class__ is not str or dtype not in DTYPES:
        raise OptionError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)} (4, 2, 2 and 1 bytes per element)")
    if mode is None:
        mode = "inference"
    elif mode.__class__ is not str or mode not in MODES:
        raise OptionError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if optimizer is not None:
        if optimizer.__class__ is not str or optimizer not in OPTIMIZERS:
            raise OptionError(f"optimizer {optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if mode == "inference":
            raise OptionError(
                f"optimizer={optimizer!r} is for mode='training': inference keeps no gradients or optimizer state; "
                "give mode='training' or leave optimizer out"
            )
    if mode == "training" and dtype == "int8":
        raise OptionError("dtype 'int8' is for mode='inference' (quantized weights and activations); training needs float32, float16 or bfloat16")
    if batch_size is None:
        batch_size = x.n or 1
    elif batch_size.__class__ is not int or batch_size < 1:
        raise OptionError(f"batch_size must be an int >= 1, got {batch_size!r}")
    elif x.n is not None and batch_size != x.n:
        dims = x.dims()
        raise OptionError(
            f"batch_size={batch_size} but input_shape {dims} has batch axis N={x.n}; give one of them "
            f"(batch_size sets N for an input_shape without one, e.g. {dims[1:]})"
        )
    return dtype, batch_size, mode, optimizer or "sgd"


def _order(records: list[Rec], out: list[Rec]) -> list[Rec]:
    """Every record after its sources, a block's path layers before the block (skills.walk.Walked.order, without its
    stack of tuples: this runs on every shape_calculator call)."""
    append = out.append
    for r in records:
        if r.paths is not None:
            for p in r.paths:
                _order(p, out)
        append(r)
    return out


def _walk_order(done: Any) -> list[Rec]:
    """_order(done.records), the cheap ways first: no blocks, or blocks whose paths hold none (most networks)."""
    if not done.inner:
        return done.records
    if any(map(_PATHS, done.inner)):
        return _order(done.records, [])
    out: list[Rec] = []
    append = out.append
    for r in done.records:
        if r.paths is not None:
            for p in r.paths:
                out += p
        append(r)
    return out


def memory(done: Any, dtype: Any = None, batch_size: Any = None, mode: Any = None, optimizer: Any = None) -> MemoryReport:
    """The memory block of a walk (skills.walk.Walked): bytes in `dtype` at `batch_size`; `mode` picks total_bytes."""
    x0 = done.input_shape
    dtype, batch, mode, optimizer = options(x0, dtype, batch_size, mode, optimizer)
    order = done.__dict__.get("_order") or _walk_order(done)
    steps = len(order)
    # Storages are numbered in the order they are made, 0 the input, and sized in elements at the walk's batch; a
    # storage's number is the step of the inference replay that allocates it (records that share their input's
    # storage are not steps: nothing is allocated there, so the peak cannot be there). A train-mode dropout makes a
    # tensor where eval mode returns its input: such training-only storages are numbered down from the top and
    # merged into their input's for the replay (`merged`).
    alloc = [0] * (steps + 2)  # elements of each storage (one slot more, for the frees after the last step)
    alloc[0] = x0.elements()
    last = list(range(steps + 2))  # last step that reads each storage (its own step until one reads it)
    kept_by = [0] * (steps + 2)  # 1 for the storages autograd keeps
    made: list[Rec | None] = [None] * (steps + 2)  # the record that makes each storage
    merged: list[tuple[int, int]] = []  # (training-only storage, the storage eval mode returns instead)
    kept = fixed = indices = 0  # new tensors autograd keeps: elements scaled with the batch, fixed ones, int64 ones
    norg = {None}  # records whose output needs no gradient (no params before them)
    kind = _KIND
    aliased = fwd = tracked = t = 0  # elements of shared outputs; torchinfo's; norms with running stats; the step
    top = steps + 2  # the next training-only storage is top - 1
    for rec in order:  # the hot loop, the common layers first: keep it short
        srcs = rec.srcs
        s0 = srcs[0]
        src = 0 if s0 is None else s0.mem  # Rec.mem: the storage of a record's output, set below
        try:
            k = kind[rec.type]
        except KeyError:
            k = NOTHING
        if k == CONV:  # a new tensor; params, so a gradient always flows
            t += 1
            last[src] = t
            y = rec.y
            e = alloc[t] = y._count or y.elements()  # cached by the rows
            rec.mem = t
            made[t] = rec
            fwd += e  # torchinfo's forward/backward figure: the outputs of the layers with params
            layer = rec.layer
            if layer.padding.__class__ is not str and layer.padding_mode == "zeros":
                kept_by[src] = 1
            else:
                keep_input, copy = _conv(rec)
                if keep_input and s0 not in norg:  # the padding op before it keeps its input if a gradient flows in
                    kept_by[src] = 1
                kept += copy
            continue
        if k == BATCHNORM:  # a new tensor of its input's size
            t += 1
            last[src] = t
            e = alloc[t] = alloc[src]
            rec.mem = t
            made[t] = rec
            b = rec.buffers
            if b:
                tracked += 1
            if rec.params:
                fwd += e
            elif s0 in norg:
                norg.add(rec)
                continue
            kept_by[src] = 1
            x = rec.x
            fixed += b - 1 if b else 2 * (x.f if x.flat else x.c)  # save_mean, save_invstd: per channel, whatever the batch
            continue
        if RELU <= k <= ACT_RESULT:  # activations that may work in place
            e = alloc[src]
            if rec.layer.inplace:
                last[src] = t
                rec.mem = src
                aliased += e
                if s0 in norg:
                    norg.add(rec)
                elif k == ACT_COPY:
                    kept += e  # a copy of the input it overwrites
                else:
                    kept_by[src] = 1  # its result, the same storage
            else:
                t += 1
                last[src] = t
                alloc[t] = e
                rec.mem = t
                made[t] = rec
                if s0 in norg:
                    norg.add(rec)
                else:
                    kept_by[t if k == RELU else src] = 1  # relu keeps its output, the others their input
            continue
        y = rec.y
        e = alloc[src] if y is rec.x else y._count or y.elements()
        if k >= RELU and (k >= VIEW or rec.layer.inplace):
            own = rec.mem = src
            if k == DROPOUT and rec.layer.p != 0 and not (rec.layer.inplace and rec.type != "alphadropout"):
                top -= 1
                own = rec.mem = top  # a new tensor in training, the input itself in eval mode
                alloc[top] = e
                last[top] = t  # read here until a later step reads it (its number is no step)
                merged.append((top, src))
            else:
                aliased += e
        else:
            t += 1
            own = rec.mem = t
            alloc[t] = e
            made[t] = rec
        last[src] = t
        if 0 < k <= MUL:  # a join or a merge: every source is read here
            for s in srcs:
                last[0 if s is None else s.mem] = t
        p = rec.params
        if not p and s0 in norg and (len(srcs) == 1 or all(s in norg for s in srcs)):
            norg.add(rec)  # no gradient flows here: autograd keeps nothing
            if rec.buffers and k != JOIN:
                tracked += 1
            continue
        if k == X:
            kept_by[src] = 1
            if p:
                fwd += e
        elif k == Y:
            kept_by[own] = 1
        elif k == MUL:
            kept += _mul(rec, x0, norg, kept_by)
        elif k > JOIN:
            keep_input, keep_output, scaled, one, idx = _rare(k, rec)
            if keep_input:
                kept_by[src] = 1
            if keep_output:
                kept_by[own] = 1
            kept += scaled
            fixed += one
            indices += idx
            if p:
                fwd += e
            if rec.buffers:
                tracked += 1
    acts = sum(alloc) - alloc[0] + aliased  # every record's output: the new storages and the shared ones
    kept += sum(compress(alloc, kept_by))
    # the inference replay: a storage is freed after the last step that reads it, the output's at the end
    last[0 if done.out is None else done.out.mem] = t
    for s, into in reversed(merged):
        if last[s] > last[into]:
            last[into] = last[s]
        alloc[s] = 0
    for s in range(t, -1, -1):  # alloc becomes allocations minus frees; backwards, each size is read unchanged
        alloc[last[s] + 1] -= alloc[s]
    live = list(accumulate(alloc[: t + 1]))
    peak = max(live)
    at = live.index(peak)

    params = buffers = 0
    for r in done.records:  # top-level records: a block's holds its layers' sums
        params += r.params
        buffers += r.buffers
    elem = DTYPES[dtype]
    unit = (batch if x0.n is None else 1) * elem  # the walk's elements are per sample when the input has no batch axis
    params_bytes = params * elem
    buffers_bytes = (buffers - tracked) * elem + tracked * INT64
    saved_bytes = kept * unit + fixed * elem + indices * unit // elem * INT64
    state = OPTIMIZERS[optimizer]
    optimizer_bytes = state * params_bytes + (4 * _param_tensors(order) if state == 2 else 0)
    training = 2 * params_bytes + buffers_bytes + optimizer_bytes + saved_bytes
    input_bytes = x0.elements() * unit
    peak_bytes = peak * unit
    forward_backward = 2 * fwd * unit
    where = made[at]
    return construct(MemoryReport, MEMORY_FIELDS, {
        "dtype": dtype, "batch_size": batch, "mode": mode, "optimizer": optimizer,
        "total_bytes": training if mode == "training" else params_bytes + buffers_bytes + peak_bytes,
        "input_bytes": input_bytes, "params_bytes": params_bytes, "buffers_bytes": buffers_bytes,
        "activation_bytes": acts * unit, "inference_peak_bytes": peak_bytes,
        "inference_peak_at": "input" if where is None else where.name or where.path,
        "training_bytes": training, "saved_for_backward_bytes": saved_bytes, "gradient_bytes": params_bytes,
        "optimizer_state_bytes": optimizer_bytes,
        "torchinfo_input_mb": input_bytes / MB, "torchinfo_forward_backward_mb": forward_backward / MB,
        "torchinfo_params_mb": params_bytes / MB,
        "torchinfo_total_mb": (input_bytes + forward_backward + params_bytes) / MB, "model": MODEL_SHORT,
    })


def _param_tensors(order: list[Rec]) -> int:
    """Parameter tensors (weight, bias) of the layers with params: Adam keeps a step per tensor."""
    return sum([1 if r.type == "prelu" or not getattr(r.layer, "bias", False) else 2 for r in order if r.params and r.paths is None])


def _mul(rec: Rec, x0: T, norg: set, kept_by: list[int]) -> int:
    """A graph mul of k inputs as torch chains it, ((a * b) * c) ...: each product keeps the factor the other side's
    gradient needs. Returns the elements of intermediate products kept (each a new tensor)."""
    srcs = rec.srcs
    xs = [s.y if s is not None else x0 for s in srcs]
    left, left_rg, kept = _storage(srcs[0]), srcs[0] not in norg, 0
    left_new = 0  # elements of the intermediate product `left` is (0: left is a storage)
    for j in range(1, len(srcs)):
        right = srcs[j]
        right_rg = right not in norg
        if left_rg:
            kept_by[_storage(right)] = 1
        if right_rg:
            if left_new:
                kept += left_new
            else:
                kept_by[left] = 1
        if j < len(srcs) - 1:
            left_new = _broadcast(xs[: j + 1], [str(n) for n in range(j + 1)]).elements()
            left_rg = left_rg or right_rg
    return kept


def _storage(rec: Rec | None) -> int:
    return 0 if rec is None else rec.mem
