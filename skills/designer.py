"""The architecture search: the provably best stacks of Conv2d layers under a parameter budget.

The search space (CONTRACT.md): sequences of 1..max_layers conv2d layers, each with kernel_size from
`kernel_sizes`, stride from `strides`, dilation from `dilations`, out_channels from `widths`, padding
dilation*(kernel_size-1)//2 and a bias. A design fits when every layer's output is at least 1 px, its
params are at most `param_budget`, its receptive field reaches the target on both axes and, if given,
its final spatial size equals `output_size`. Best = least objective; ties go to fewer layers, then
fewer MACs (then fewer params).

How it is exact: A* over labels (params, MACs, layers) on states (H, W, G, channels) where
G = ceil((target - RF) / effective stride) is the receptive-field growth still needed in units of the
current effective stride (every later layer grows the RF by a multiple of it, so G is all the future
needs to know). The heuristic is the exact optimum of a relaxed problem (every later layer at the
smallest width), computed per component, so it is admissible and consistent for the lexicographic
order; a label is dropped only when `top_k` kept labels at its state are at least as good on params,
MACs and layers at once. When the queue empties or top_k goals have been popped, the answer is proven.

Two conventions: a 1x1 kernel ignores dilation, so it is tried with the smallest dilation only (the
other copies are the same network); and each conv is followed by a ReLU in the returned spec
(`activation="relu"`, the default) because a stack of bare convs collapses into one linear map.
ReLU and BatchNorm add no MACs and do not move the receptive field or the sizes.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from .arithmetic import conv_output_length, effective_kernel, pair, receptive_field_step
from .errors import GeometryError, InfeasibleError, LimitError, SpecError

Objective = Literal["params", "macs", "layers"]
Activation = Literal["relu", "none"]
ProgressFn = Callable[[int, "int | None", str], None]

DEFAULT_KERNEL_SIZES = (3, 5, 7)
DEFAULT_STRIDES = (1, 2)
DEFAULT_DILATIONS = (1,)
DEFAULT_WIDTHS = (16, 32, 64, 128)
DEFAULT_MAX_STATES = 5_000_000

_INF = 1 << 62
_HUGE = 10**12  # larger sizes are no real image and only make the messages unreadable
_UNREACHABLE = (_INF, _INF, _INF)
# Components of a cost vector, and the lexicographic order each objective compares them in.
_P, _M, _L = 0, 1, 2
_ORDER = {"params": (_P, _L, _M), "macs": (_M, _L, _P), "layers": (_L, _M, _P)}


# ----------------------------------------------------------------------------------------------- models


class DesignConv(BaseModel):
    """One conv layer of a design with its figures."""

    index: int = Field(description="position of this conv among the design's convs, from 0")
    spec_index: int = Field(description="index of this conv in the design's `layers` spec")
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    dilation: int
    padding: int
    output_shape: list[int]
    receptive_field: list[int] = Field(description="[h, w] after this layer")
    effective_stride: list[int] = Field(description="[h, w] after this layer")
    params: int
    macs: int
    why: str = Field(description="one sentence on why this layer is there")


class Design(BaseModel):
    """One stack that fits: a network spec shape_calculator accepts as is, and its figures."""

    rank: int = Field(description="1 = best")
    layers: list[dict[str, Any]] = Field(description="network spec (conv2d, then batchnorm2d/relu if chosen)")
    why: list[str] = Field(description="one sentence per entry of `layers`")
    convs: list[DesignConv] = Field(description="the conv layers with their figures")
    depth: int = Field(description="number of conv layers")
    params: int
    buffers: int = Field(description="BatchNorm running statistics, 2C+1 per BatchNorm")
    macs: int
    receptive_field: list[int]
    effective_stride: list[int]
    output_shape: list[int]
    summary: str = Field(description="the stack in one line: k<kernel>s<stride>d<dilation>c<width> per conv")
    receptive_field_holes: bool = Field(
        description="true when an output pixel skips input pixels inside its receptive field (stride/dilation gridding)"
    )


class ParetoPoint(BaseModel):
    """A design no other fitting design beats on params, MACs and depth at once."""

    params: int
    macs: int
    depth: int
    summary: str
    layers: list[dict[str, Any]]


class SearchSpace(BaseModel):
    """The space that was searched, with the defaults filled in."""

    input_shape: list[int]
    param_budget: int | None
    target_receptive_field: list[int]
    output_size: list[int] | None
    max_layers: int
    kernel_sizes: list[int]
    strides: list[int]
    dilations: list[int]
    widths: list[int]
    objective: Objective
    top_k: int
    batch_norm: bool
    activation: Activation
    monotone_widths: bool
    reject_gridding: bool
    reject_redundant: bool


class DesignReport(BaseModel):
    """Result of design_architecture: the best designs first, and whether that is proven."""

    designs: list[Design] = Field(description="up to top_k distinct designs, best first")
    optimal: bool = Field(description="true when the whole search space was covered, so `designs` are provably the best")
    explored: int = Field(description="search states (labels) expanded")
    elapsed_s: float
    stopped_by: str | None = Field(None, description="time_limit_s, max_states or cancelled when the search stopped early")
    pareto_front: list[ParetoPoint] = Field(
        default_factory=list, description="fitting designs not beaten on params, MACs and depth at once, by params"
    )
    pareto_complete: bool = Field(False, description="true when pareto_front is the whole front")
    search_space: SearchSpace
    notes: list[str] = Field(default_factory=list)


# ----------------------------------------------------------------------------------------------- search


@dataclass(frozen=True)
class _Choice:
    kernel: int
    stride: int
    dilation: int
    padding: int
    growth: int  # RF growth of this layer at effective stride 1


@dataclass
class _Outcome:
    goals: list[int]
    optimal: bool
    explored: int
    stopped_by: str | None


class _Stop(Exception):
    pass


class _Search:
    """One design problem; nodes are labels in parallel lists, states are tuples."""

    def __init__(self, space: SearchSpace, budget: int | None, *, monotone: bool, gridding: bool, redundant: bool):
        self.space = space
        shape = space.input_shape
        self.n = shape[0] if len(shape) == 4 else 1
        self.c0, self.h0, self.w0 = shape[-3], shape[-2], shape[-1]
        self.target = max(space.target_receptive_field)  # square kernels: the RF is the same on both axes
        self.out = tuple(space.output_size) if space.output_size else None
        self.max_layers = space.max_layers
        self.widths = space.widths
        self.wmin = space.widths[0]
        self.bn = 2 if space.batch_norm else 0  # BatchNorm affine: 2 params per channel
        self.budget = _INF if budget is None else budget
        self.monotone, self.gridding, self.redundant = monotone, gridding, redundant
        self.cover = max(self.h0, self.w0)
        choices = []
        dmin = min(space.dilations)
        for k in space.kernel_sizes:
            for s in space.strides:
                for d in space.dilations:
                    if k == 1 and d != dmin:
                        continue  # a 1x1 kernel ignores dilation: the same network
                    pad = d * (k - 1) // 2
                    growth = receptive_field_step(1, 1, 0.0, k, s, pad, d)[0] - 1
                    choices.append(_Choice(k, s, d, pad, growth))
        self.choices = choices
        wide = [c.dilation for c in choices if c.kernel > 1]
        self.dmin_wide = min(wide) if wide else 1
        # beyond q_cap[r], r more layers cannot bring RF / effective stride below the smallest dilation
        self.q_cap = [self.dmin_wide * max(space.strides) ** r for r in range(space.max_layers + 1)]
        self._len_memo: dict[tuple[int, int], int] = {}
        self._bound_memo: dict[tuple, tuple[int, int, int]] = {}
        self.generated = self.ticks = 0
        self.max_states = DEFAULT_MAX_STATES
        self.deadline = float("inf")
        self.should_stop: Callable[[], bool] | None = None

    # sizes and the relaxed bound ------------------------------------------------------------------

    def length(self, size: int, ci: int) -> int:
        """Output length of choice ci on an axis of `size` px, 0 when the kernel does not fit."""
        key = (size, ci)
        got = self._len_memo.get(key)
        if got is None:
            c = self.choices[ci]
            try:
                got = conv_output_length(size, c.kernel, c.stride, c.padding, c.padding, c.dilation)
            except GeometryError:
                got = 0
            self._len_memo[key] = got
        return got

    def start_need(self) -> int:
        return max(0, self.target - 1)  # RF starts at 1 px

    @staticmethod
    def next_need(need: int, choice: _Choice) -> int:
        # every later layer grows the RF by a multiple of the new effective stride: round up
        return -(-max(0, need - choice.growth) // choice.stride)

    def geometry_done(self, h: int, w: int, need: int) -> bool:
        return need == 0 and (self.out is None or (h, w) == self.out)

    def bound(self, h: int, w: int, need: int, c: int, rem: int, q: int = -1) -> tuple[int, int, int]:
        """Least (params, MACs, layers) still to pay, each on its own, with every later layer at the smallest width.

        With reject_gridding, q = floor(RF / effective stride) (capped where it no longer matters): a stack whose
        RF falls behind its effective stride can never fill the holes (see next_extra), so the bound forbids it.
        """
        key = (h, w, need, c, rem, q)
        got = self._bound_memo.get(key)
        if got is not None:
            return got
        if self.geometry_done(h, w, need):
            res = (0, 0, 0)
        elif rem == 0:
            res = _UNREACHABLE
        else:
            bp = bm = bl = _INF
            wmin, n, bn = self.wmin, self.n, self.bn
            for ci, ch in enumerate(self.choices):
                ho = self.length(h, ci)
                wo = self.length(w, ci) if ho else 0
                if not wo:
                    continue
                need2 = self.next_need(need, ch)
                q2 = q
                if q >= 0:
                    q2 = (q + ch.growth) // ch.stride
                    if need2 and q2 < self.dmin_wide:
                        continue
                    q2 = min(q2, self.q_cap[rem - 1])
                cp, cm, cl = self.bound(ho, wo, need2, wmin, rem - 1, q2)
                if cp >= _INF:
                    continue
                kk = ch.kernel * ch.kernel
                bp = min(bp, wmin * (c * kk + 1 + bn) + cp)
                bm = min(bm, ho * wo * wmin * c * kk * n + cm)
                bl = min(bl, 1 + cl)
            res = (bp, bm, bl) if bp < _INF else _UNREACHABLE
        self._bound_memo[key] = res
        if len(self._bound_memo) & 255 == 0:
            self.check()
        return res

    def check(self) -> None:
        """Raise _Stop when a limit is reached; called every few thousand steps."""
        if len(self._bound_memo) + self.generated > self.max_states:
            raise _Stop("max_states")
        if time.perf_counter() > self.deadline:
            raise _Stop("time_limit_s")
        if self.should_stop is not None and self.should_stop():
            raise _Stop("cancelled")

    # the options' extra state ---------------------------------------------------------------------

    def start_extra(self) -> tuple:
        extra: tuple = ()
        if self.gridding or self.redundant:
            extra += (1,)  # effective stride
        if self.gridding:
            extra += (1, ())  # contiguous offsets [0, R), pending (step, k-1) pairs not yet joined
        if self.redundant:
            extra += (1,)  # RF capped at the input's larger side
        return extra

    def grid_part(self, extra: tuple, rem: int) -> int:
        """The bound's view of the options' state: q = floor(RF / effective stride) with reject_gridding, else -1."""
        if not self.gridding:
            return -1
        jump, reach, pending = extra[0], extra[1], extra[2]
        rf = reach + sum(step * m for step, m in pending)
        return min(rf // jump, self.q_cap[rem])

    def next_extra(self, extra: tuple, ch: _Choice, need: int, redundant: bool = True) -> tuple | None:
        """The options' state after one more layer (`need` = growth still needed after it), None when an option rejects it."""
        if not extra:
            return extra
        jump = extra[0]
        out: tuple = (jump * ch.stride,)
        if self.gridding:
            reach, pending = extra[1], extra[2]
            if ch.kernel > 1:
                # The offsets one output sees are sums of {0, step, ..., (k-1)*step}, step = jump*dilation,
                # over the layers. Such a sum is contiguous iff, taking the steps in increasing order, each
                # step is at most the contiguous run built so far; the rest waits in `pending`.
                pending = tuple(sorted(pending + ((jump * ch.dilation, ch.kernel - 1),)))
                while pending and pending[0][0] <= reach:
                    reach += pending[0][0] * pending[0][1]
                    pending = pending[1:]
            if reach < out[0] * self.dmin_wide and (pending or need):
                # every later kernel steps at least jump*dilation > reach: nothing pending can ever join, and any
                # further growth would leave a hole
                return None
            out += (reach, pending)
        if self.redundant and redundant:
            rf = extra[-1]
            if rf >= self.cover:
                return None  # the RF already covers the whole input: this layer adds nothing
            rf = receptive_field_step(rf, jump, 0.0, ch.kernel, ch.stride, ch.padding, ch.dilation)[0]
            out += (min(rf, self.cover),)
        return out

    def extra_done(self, extra: tuple) -> bool:
        return not self.gridding or not extra[2]

    # the search -----------------------------------------------------------------------------------

    def run(
        self,
        objective: Objective,
        top_k: int,
        *,
        pareto: bool = False,
        deadline: float = float("inf"),
        max_states: int = DEFAULT_MAX_STATES,
        progress: ProgressFn | None = None,
        should_stop: Callable[[], bool] | None = None,
        front: list[tuple] | None = None,
    ) -> _Outcome:
        """A* in the objective's lexicographic order; with pareto=True, collect the (params, MACs, layers) front instead."""
        self.deadline, self.max_states, self.should_stop = deadline, max_states, should_stop
        self.generated = 0
        # node storage, one entry per label: parent, (choice index, width), (params, MACs, layers), state
        self.parent = [-1]
        self.pick = [(-1, self.c0)]
        self.cost = [(0, 0, 0)]
        self.state = [(self.h0, self.w0, self.start_need(), self.c0, self.start_extra())]
        self.heap = []
        self.front = [] if front is None else list(front)
        goals: list[int] = []
        self.explored = explored = 0
        stopped = None
        try:
            explored = self._loop(objective, top_k, pareto, goals, progress)
        except _Stop as stop:
            stopped = stop.args[0]
            explored = self.explored
        return _Outcome(goals=goals, optimal=stopped is None, explored=explored, stopped_by=stopped)

    def _loop(self, objective: Objective, top_k: int, pareto: bool, goals: list[int], progress: ProgressFn | None) -> int:
        order = (_P, _M, _L) if pareto else _ORDER[objective]
        o0, o1, o2 = order
        keep = 1 if pareto else top_k
        budget, widths, max_layers = self.budget, self.widths, self.max_layers
        n, bn, monotone = self.n, self.bn, self.monotone
        parent, pick, cost, state, heap, front = self.parent, self.pick, self.cost, self.state, self.heap, self.front
        kept: dict[tuple, list[tuple[int, int, int]]] = {}
        push, pop = heapq.heappush, heapq.heappop
        memo_get = self._bound_memo.get

        def dominated(labels: list[tuple[int, int, int]] | None, p: int, m: int, layers: int) -> bool:
            # dropped only when `keep` kept labels are at least as good on all three: their completions come first
            if not labels:
                return False
            count = 0
            for q in labels:
                if q[0] <= p and q[1] <= m and q[2] <= layers:
                    count += 1
                    if count >= keep:
                        return True
            return False

        def beaten(p: int, m: int, layers: int) -> bool:
            for q in front:
                if q[0] <= p and q[1] <= m and q[2] <= layers:
                    return True
            return False

        def tick(explored: int) -> None:
            self.explored, self.generated = explored, len(parent)
            self.check()
            if progress is not None:
                what = "front points" if pareto else "designs proven"
                progress(explored, None, f"explored {explored:,} states ({len(parent):,} created), {len(goals)} {what} so far")

        b0 = self.bound(self.h0, self.w0, self.start_need(), self.c0, max_layers, self.grid_part(self.start_extra(), max_layers))
        if b0[0] < _INF and b0[0] <= budget:
            heap.append((b0[o0], b0[o1], b0[o2], 0, 0, False))
        self.explored = explored = 0
        seq = 0
        next_check = 2048
        while heap:
            if seq >= next_check:
                next_check = seq + 2048
                tick(explored)
            entry = pop(heap)
            nid = entry[4]
            p, m, layers = cost[nid]
            if entry[5]:  # a finished design
                if pareto:
                    if not beaten(p, m, layers):
                        front.append((p, m, layers, nid))
                        goals.append(nid)
                    continue
                goals.append(nid)
                if len(goals) >= top_k:
                    break
                continue
            st = state[nid]
            if layers:  # the empty stack is no design, so it must not count as one that dominates
                labels = kept.get(st)
                if labels is None:
                    labels = kept[st] = []
                elif dominated(labels, p, m, layers):
                    continue
                labels.append((p, m, layers))
            explored += 1
            h, w, need, c, extra = st
            if layers >= 1 and self.geometry_done(h, w, need) and (not extra or self.extra_done(extra)):
                if not (pareto and beaten(p, m, layers)):
                    g = (p, m, layers)
                    seq += 1
                    push(heap, (g[o0], g[o1], g[o2], seq, nid, True))
            if layers >= max_layers:
                continue
            rem = max_layers - layers - 1
            nl = layers + 1
            for ci, ch in enumerate(self.choices):
                ho = self.length(h, ci)
                wo = self.length(w, ci) if ho else 0
                if not wo:
                    continue
                need2 = self.next_need(need, ch)
                nx = self.next_extra(extra, ch, need2) if extra else extra
                if nx is None:
                    continue
                gx = self.grid_part(nx, rem) if extra else -1
                kk = ch.kernel * ch.kernel
                area = ho * wo * kk * c * n
                for co in widths:
                    if monotone and layers and co < c:
                        continue
                    b = memo_get((ho, wo, need2, co, rem, gx))
                    bp, bm, bl = b if b is not None else self.bound(ho, wo, need2, co, rem, gx)
                    if bp >= _INF:
                        break  # reachability does not depend on the width
                    p2 = p + co * (c * kk + 1 + bn)
                    if p2 + bp > budget:
                        break  # widths ascend, and both terms grow with the width
                    m2 = m + area * co
                    st2 = (ho, wo, need2, co, nx)
                    if dominated(kept.get(st2), p2, m2, nl):
                        continue
                    f = (p2 + bp, m2 + bm, nl + bl)
                    if pareto and beaten(*f):
                        continue
                    parent.append(nid)
                    pick.append((ci, co))
                    cost.append((p2, m2, nl))
                    state.append(st2)
                    seq += 1
                    push(heap, (f[o0], f[o1], f[o2], seq, len(parent) - 1, False))
                if seq >= next_check:
                    next_check = seq + 2048
                    tick(explored)
        self.explored = explored
        return explored

    def path(self, nid: int) -> list[tuple[int, int]]:
        """(choice index, width) of each conv from the input to node nid."""
        out = []
        while nid > 0:
            out.append(self.pick[nid])
            nid = self.parent[nid]
        return out[::-1]

    def complete(self, nid: int, order: tuple[int, int, int]) -> list[tuple[int, int]] | None:
        """A fitting design that extends node nid greedily along the relaxed bound, or None (anytime answers)."""
        seqs = self.path(nid)
        p, m, layers = self.cost[nid]
        h, w, need, c, extra = self.state[nid]
        while not (layers >= 1 and self.geometry_done(h, w, need) and self.extra_done(extra)):
            if layers >= self.max_layers:
                return None
            best = None
            for ci, ch in enumerate(self.choices):
                ho = self.length(h, ci)
                wo = self.length(w, ci) if ho else 0
                need2 = self.next_need(need, ch)
                nx = self.next_extra(extra, ch, need2) if (wo and extra) else extra
                if not wo or nx is None:
                    continue
                for co in self.widths:
                    if self.monotone and layers and co < c:
                        continue
                    b = self.bound(ho, wo, need2, co, self.max_layers - layers - 1, self.grid_part(nx, self.max_layers - layers - 1) if nx else -1)
                    kk = ch.kernel * ch.kernel
                    g = (p + co * (c * kk + 1 + self.bn), m + ho * wo * kk * c * co * self.n, layers + 1)
                    if b[0] >= _INF or g[0] + b[0] > self.budget:
                        continue
                    f = tuple(g[i] + b[i] for i in order)
                    if best is None or f < best[0]:
                        best = (f, ci, co, g, (ho, wo, need2, co, nx))
            if best is None:
                return None
            _, ci, co, (p, m, layers), (h, w, need, c, extra) = best
            seqs.append((ci, co))
        return seqs


# ----------------------------------------------------------------------------------------------- figures


def _conv_params(c_in: int, c_out: int, k: int) -> int:
    return c_out * c_in * k * k + c_out  # weight + bias


def _summary(search: _Search, seq: Sequence[tuple[int, int]]) -> str:
    parts = []
    for ci, co in seq:
        ch = search.choices[ci]
        parts.append(f"k{ch.kernel}s{ch.stride}d{ch.dilation}c{co}")
    return " > ".join(parts)


def _build_design(search: _Search, seq: Sequence[tuple[int, int]], rank: int, activation: Activation) -> Design:
    """Walk one design with the arithmetic functions: spec, figures and a sentence per layer."""
    space = search.space
    n = search.n
    batch = [n] if len(space.input_shape) == 4 else []
    h, w, c = search.h0, search.w0, search.c0
    rf, jump, start = 1, 1, 0.0
    target = search.target
    spec: list[dict[str, Any]] = []
    why: list[str] = []
    convs: list[DesignConv] = []
    total_p = total_b = total_m = 0
    reached = False
    taps: list[tuple[int, int]] = []  # (step, k-1) of each conv: the offsets one output reads are their sums
    for i, (ci, co) in enumerate(seq):
        ch = search.choices[ci]
        k, s, d, pad = ch.kernel, ch.stride, ch.dilation, ch.padding
        ho = conv_output_length(h, k, s, pad, pad, d)
        wo = conv_output_length(w, k, s, pad, pad, d)
        rf2, jump2, start = receptive_field_step(rf, jump, start, k, s, pad, d)
        params = _conv_params(c, co, k)
        macs = ho * wo * co * c * k * k * n
        span = effective_kernel(k, d)
        if k > 1:
            taps.append((jump * d, k - 1))
        sentence = _why(i, len(seq), c, co, k, s, d, span, h, w, ho, wo, rf, rf2, jump2, target, reached, search)
        reached = reached or rf2 >= target
        spec_index = len(spec)
        spec.append(
            {"type": "conv2d", "in_channels": c, "out_channels": co, "kernel_size": k, "stride": s, "padding": pad, "dilation": d}
        )
        why.append(sentence)
        convs.append(
            DesignConv(
                index=i, spec_index=spec_index, in_channels=c, out_channels=co, kernel_size=k, stride=s, dilation=d,
                padding=pad, output_shape=[*batch, co, ho, wo], receptive_field=[rf2, rf2],
                effective_stride=[jump2, jump2], params=params, macs=macs, why=sentence,
            )
        )
        total_p += params
        total_m += macs
        if space.batch_norm:
            spec.append({"type": "batchnorm2d", "num_features": co})
            why.append(f"normalises the {co} channels of conv {i} ({2 * co} affine params, {2 * co + 1} buffers).")
            total_p += 2 * co
            total_b += 2 * co + 1
        if activation == "relu":
            spec.append({"type": "relu"})
            why.append(f"non-linearity after conv {i}, so the stack does not collapse into one linear map.")
        h, w, c, rf, jump = ho, wo, co, rf2, jump2
    return Design(
        rank=rank, layers=spec, why=why, convs=convs, depth=len(seq), params=total_p, buffers=total_b, macs=total_m,
        receptive_field=[rf, rf], effective_stride=[jump, jump], output_shape=[*batch, c, h, w],
        summary=_summary(search, seq), receptive_field_holes=_has_holes(taps),
    )


def _has_holes(taps: list[tuple[int, int]]) -> bool:
    """Whether the sums of {0, step, ..., m*step} over the taps skip an offset (steps taken in increasing order)."""
    reach = 1
    for step, m in sorted(taps):
        if step > reach:
            return True
        reach += step * m
    return False


def _why(
    i: int, depth: int, c: int, co: int, k: int, s: int, d: int, span: int,
    h: int, w: int, ho: int, wo: int, rf: int, rf2: int, jump2: int, target: int, reached: bool, search: _Search,
) -> str:
    """One sentence on the layer's role: channels, downsampling, receptive field, output size."""
    parts = []
    kernel = f"{k}x{k} conv" + (f" dilated {d} (spans {span} px)" if d > 1 and k > 1 else "")
    if i == 0:
        parts.append(f"{kernel} lifts the {c} input channels to {co}")
    elif co != c:
        parts.append(f"{kernel} {'widens' if co > c else 'narrows'} {c} to {co} channels")
    else:
        parts.append(f"{kernel} at {co} channels")
    if s > 1:
        parts.append(f"downsamples {h}x{w} to {ho}x{wo} so later kernels grow the receptive field {jump2}x as fast")
    elif (ho, wo) != (h, w):
        parts.append(f"trims {h}x{w} to {ho}x{wo}")
    if rf2 > rf:
        if not reached and rf2 >= target:
            parts.append(f"reaches the target receptive field ({rf} -> {rf2} px >= {target})")
        else:
            parts.append(f"grows the receptive field {rf} -> {rf2} px")
    elif k == 1:
        parts.append("mixes channels without growing the receptive field")
    if i == depth - 1 and search.out is not None:
        parts.append(f"ends at the required {ho}x{wo}")
    return ", ".join(parts) + "."


# ----------------------------------------------------------------------------------------------- entry point


def _int_list(values: Sequence[int], name: str, minimum: int = 1) -> list[int]:
    if isinstance(values, int) and not isinstance(values, bool):
        values = [values]
    out = sorted(set(values))
    if not out or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in out):
        raise SpecError(f"{name} must be a non-empty list of ints >= {minimum}, got {values!r}")
    return out


def design_architecture(
    input_shape: Sequence[int],
    param_budget: int | None,
    target_receptive_field: int | Sequence[int],
    output_size: int | Sequence[int] | None = None,
    max_layers: int = 8,
    kernel_sizes: Sequence[int] = DEFAULT_KERNEL_SIZES,
    strides: Sequence[int] = DEFAULT_STRIDES,
    dilations: Sequence[int] = DEFAULT_DILATIONS,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    objective: Objective = "params",
    top_k: int = 3,
    time_limit_s: float = 10.0,
    batch_norm: bool = False,
    activation: Activation = "relu",
    monotone_widths: bool = False,
    reject_gridding: bool = False,
    reject_redundant: bool = False,
    max_states: int = DEFAULT_MAX_STATES,
    pareto: bool = True,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> DesignReport:
    """The top_k best conv2d stacks for an input, a param budget and a target receptive field, proven optimal when `optimal`."""
    began = time.perf_counter()
    if not (isinstance(input_shape, (list, tuple)) and len(input_shape) in (3, 4)) or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in input_shape
    ):
        raise SpecError(f"input_shape must be [C, H, W] or [N, C, H, W] of ints >= 1, got {input_shape!r}")
    if param_budget is not None and (isinstance(param_budget, bool) or not isinstance(param_budget, int) or param_budget < 1):
        raise SpecError(f"param_budget must be an int >= 1, got {param_budget!r}")
    if objective not in _ORDER:
        raise SpecError(f"objective must be 'params', 'macs' or 'layers', got {objective!r}")
    if max_layers < 1 or top_k < 1:
        raise SpecError(f"max_layers and top_k must be >= 1, got max_layers={max_layers}, top_k={top_k}")
    target = pair(target_receptive_field, "target_receptive_field", minimum=1)
    out = None if output_size is None else pair(output_size, "output_size", minimum=1)
    for name, values in (("input_shape", input_shape), ("target_receptive_field", target), ("output_size", out or ())):
        if any(v > _HUGE for v in values):
            raise SpecError(f"{name} values must be at most {_HUGE:,}, got a larger one")
    if param_budget is not None and param_budget > _HUGE**2:
        raise SpecError(f"param_budget must be at most {_HUGE**2:,}, got a larger one")
    space = SearchSpace(
        input_shape=list(input_shape), param_budget=param_budget, target_receptive_field=list(target),
        output_size=None if out is None else list(out), max_layers=max_layers,
        kernel_sizes=_int_list(kernel_sizes, "kernel_sizes"), strides=_int_list(strides, "strides"),
        dilations=_int_list(dilations, "dilations"), widths=_int_list(widths, "widths"), objective=objective,
        top_k=top_k, batch_norm=batch_norm, activation=activation, monotone_widths=monotone_widths,
        reject_gridding=reject_gridding, reject_redundant=reject_redundant,
    )
    options = dict(monotone=monotone_widths, gridding=reject_gridding, redundant=reject_redundant)
    search = _Search(space, param_budget, **options)
    deadline = began + time_limit_s
    outcome = search.run(
        objective, top_k, deadline=deadline, max_states=max_states, progress=progress, should_stop=should_stop
    )
    seqs = [search.path(g) for g in outcome.goals]
    notes: list[str] = []
    if not outcome.optimal:
        seqs = _anytime(search, seqs, top_k, _ORDER[objective])
        notes.append(
            f"stopped by {outcome.stopped_by} after {outcome.explored:,} states: the designs are the best found so far, "
            "not proven best"
        )
        if not seqs:
            raise LimitError(
                f"the search stopped ({outcome.stopped_by}) after {outcome.explored:,} states expanded "
                f"({search.generated + len(search._bound_memo):,} created) and {time.perf_counter() - began:.1f} s "
                "before any design was found; "
                "raise time_limit_s / max_states or narrow the space (fewer widths, kernel_sizes, max_layers)"
            )
    elif not seqs:
        raise InfeasibleError(
            _explain(space, param_budget, options, max(deadline, time.perf_counter() + min(1.0, time_limit_s)), max_states,
                     should_stop)
        )
    designs = [_build_design(search, seq, i + 1, activation) for i, seq in enumerate(seqs)]
    if not reject_gridding and designs[0].receptive_field_holes:
        notes.append(
            "design 1's receptive field has holes (strides or dilations skip input pixels, e.g. strided 1x1 convs); "
            "pass reject_gridding=true for designs that see every pixel of their receptive field"
        )
    front: list[ParetoPoint] = []
    pareto_complete = False
    if pareto and outcome.optimal:
        fsearch = _Search(space, param_budget, **options)
        fsearch._bound_memo = search._bound_memo  # same relaxation, same geometry
        fsearch._len_memo = search._len_memo
        # Seed the front with the lexicographic optimum of each objective (each is on the front): early pruning.
        seeds = [(*search.cost[outcome.goals[0]], tuple(seqs[0]))]
        for other in _ORDER:
            if other != objective:
                one = _Search(space, param_budget, **options)
                one._bound_memo, one._len_memo = search._bound_memo, search._len_memo
                got = one.run(other, 1, deadline=deadline, max_states=max_states, should_stop=should_stop)
                if got.goals:
                    seeds.append((*one.cost[got.goals[0]], tuple(one.path(got.goals[0]))))
        kept_seeds: list[tuple] = []
        for seed in sorted(seeds, key=lambda x: x[:3]):
            if not any(q[0] <= seed[0] and q[1] <= seed[1] and q[2] <= seed[2] for q in kept_seeds):
                kept_seeds.append(seed)
        fout = fsearch.run(
            objective, 1, pareto=True, deadline=deadline, max_states=max_states, should_stop=should_stop, front=kept_seeds
        )
        pareto_complete = fout.optimal
        for p, m, layers, ref in sorted(fsearch.front, key=lambda x: x[:3]):
            seq = list(ref) if isinstance(ref, tuple) else fsearch.path(ref)
            front.append(
                ParetoPoint(params=p, macs=m, depth=layers, summary=_summary(fsearch, seq),
                            layers=_build_design(fsearch, seq, 0, activation).layers)
            )
        if not pareto_complete:
            notes.append(f"the Pareto front is partial: its search stopped by {fout.stopped_by}")
    return DesignReport(
        designs=designs, optimal=outcome.optimal, explored=outcome.explored,
        elapsed_s=round(time.perf_counter() - began, 4), stopped_by=outcome.stopped_by,
        pareto_front=front, pareto_complete=pareto_complete, search_space=space, notes=notes,
    )


def _anytime(search: _Search, seqs: list, top_k: int, order: tuple[int, int, int]) -> list:
    """Proven designs first, then greedy completions of the most promising open labels."""
    found = {tuple(s) for s in seqs}
    extra = []
    for entry in heapq.nsmallest(64, search.heap):
        nid = entry[4]
        seq = search.complete(nid, order)
        if seq is None or tuple(seq) in found:
            continue
        found.add(tuple(seq))
        extra.append(seq)

    def key(seq):
        p = m = 0
        c, h, w = search.c0, search.h0, search.w0
        for ci, co in seq:
            ch = search.choices[ci]
            h, w = search.length(h, ci), search.length(w, ci)
            p += co * (c * ch.kernel * ch.kernel + 1 + search.bn)
            m += h * w * co * c * ch.kernel * ch.kernel * search.n
            c = co
        v = (p, m, len(seq))
        return tuple(v[i] for i in order)

    extra.sort(key=key)
    return (seqs + extra)[:top_k]


def _explain(
    space: SearchSpace, budget: int | None, options: dict, deadline: float, max_states: int,
    should_stop: Callable[[], bool] | None,
) -> str:
    """Which constraint is out of reach, and by how much."""
    try:
        return _explain_within(space, budget, options, deadline, max_states, should_stop)
    except _Stop as stop:
        return (
            "no design in the space fits (the search covered all of it), and working out which constraint is out of "
            f"reach stopped ({stop.args[0]}); relax param_budget, target_receptive_field or output_size, "
            "or widen the space (max_layers, kernel_sizes, strides, dilations, widths)"
        )


def _explain_within(
    space: SearchSpace, budget: int | None, options: dict, deadline: float, max_states: int,
    should_stop: Callable[[], bool] | None,
) -> str:
    search = _Search(space, None, monotone=False, gridding=False, redundant=False)
    search.deadline, search.max_states, search.should_stop = deadline, max_states, should_stop
    layers = space.max_layers
    target = search.target
    where = f"within {layers} layer{'s' if layers != 1 else ''}"
    kit = (f"kernel_sizes {space.kernel_sizes}, strides {space.strides}, dilations {space.dilations}")
    best_rf = 1 + _max_growth(search, search.h0, search.w0, layers, None, {})
    if best_rf < target:
        return (
            f"no stack of at most {layers} conv layers ({kit}) reaches receptive field {target} px on "
            f"a {search.h0}x{search.w0} input: the largest reachable is {best_rf} px ({target - best_rf} short); "
            "raise max_layers, or allow larger kernel_sizes, dilations or strides"
        )
    if search.out is not None:
        sizes = _reachable_sizes(search, layers)
        if search.out not in sizes:
            near = sorted(sizes, key=lambda s: (abs(s[0] - search.out[0]) + abs(s[1] - search.out[1]), s))[:6]
            return (
                f"output_size {list(search.out)} is not reachable from {search.h0}x{search.w0} {where} "
                f"with {kit}; reachable sizes nearby: {', '.join(f'[{a}, {b}]' for a, b in near)}"
            )
        rf_out = 1 + _max_growth(search, search.h0, search.w0, layers, search.out, {})
        if rf_out < target:
            return (
                f"no stack {where} that ends at output_size {list(search.out)} reaches receptive field {target} px: "
                f"the largest is {rf_out} px ({target - rf_out} short); relax output_size or raise max_layers"
            )
    with_opts = [name for name, flag in (("monotone_widths", options["monotone"]), ("reject_gridding", options["gridding"]),
                                         ("reject_redundant", options["redundant"])) if flag]
    free = _Search(space, None, **options)
    outcome = free.run("params", 1, deadline=deadline, max_states=max_states, should_stop=should_stop)
    shape = f" ending at output_size {list(search.out)}" if search.out is not None else ""
    if outcome.goals:
        p = free.cost[outcome.goals[0]][0]
        opts = f" with {', '.join(with_opts)}" if with_opts else ""
        return (
            f"the smallest design that reaches receptive field {target} px {where}{shape}{opts} has {p:,} params; "
            f"the budget is {budget:,} ({p - budget:,} over); raise param_budget or allow smaller widths "
            f"(smallest now {space.widths[0]})"
        )
    if not outcome.optimal:
        return (
            f"no design within param_budget {budget if budget is None else format(budget, ',')} reaches receptive field {target} px {where}{shape}, "
            f"and the search for the smallest one beyond the budget stopped ({outcome.stopped_by}); "
            "raise param_budget or time_limit_s"
        )
    return (
        f"no design {where}{shape} reaches receptive field {target} px under {', '.join(with_opts)}; "
        "without these options the space has designs: drop one of them or widen the space"
    )


def _max_growth(search: _Search, h: int, w: int, rem: int, out: tuple[int, int] | None, memo: dict) -> int:
    """Largest RF growth (in units of the current effective stride) reachable with at most rem layers; -inf-ish if none ends at out."""
    key = (h, w, rem)
    if key in memo:
        return memo[key]
    search.ticks += 1
    if search.ticks & 255 == 0:
        search.check()
    best = 0 if out is None or (h, w) == out else -_INF
    if rem > 0:
        for ci, ch in enumerate(search.choices):
            ho = search.length(h, ci)
            wo = search.length(w, ci) if ho else 0
            if wo:
                sub = _max_growth(search, ho, wo, rem - 1, out, memo)
                if sub > -_INF:
                    best = max(best, ch.growth + ch.stride * sub)
    memo[key] = best
    return best


def _reachable_sizes(search: _Search, layers: int) -> set[tuple[int, int]]:
    """Final (h, w) of every stack of 1..layers convs."""
    frontier = {(search.h0, search.w0)}
    seen: set[tuple[int, int]] = set()
    for _ in range(layers):
        nxt = set()
        for h, w in frontier:
            search.ticks += 1
            if search.ticks & 255 == 0:
                search.check()
            for ci in range(len(search.choices)):
                ho = search.length(h, ci)
                wo = search.length(w, ci) if ho else 0
                if wo:
                    nxt.add((ho, wo))
        nxt -= seen
        seen |= nxt
        frontier = nxt
    return seen
