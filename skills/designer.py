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

Beyond the contract: `objective="capacity"` (the most params within the budget, ties to fewer MACs, then
fewer layers), and the constraints `max_macs`, `max_activation_bytes` (ACTIVATION_BYTES_RULE) and
`min_output_size` (every conv's output at least that on both axes). Capacity is a maximisation, so its
A* key is (-(params + the most params the rest can add, all later layers at the largest width, capped at
the budget), MACs bound, layers bound): still optimistic, so the first goals popped are the best. Its
dominance is narrower: a label with more params can be pushed over the budget by a completion that fits
the other, so a label is dropped only by labels with the same params, or, when even the largest completion
of the dropping label stays within the budget, by labels with at least its params.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import gcd
from typing import Any, Literal

from pydantic import BaseModel, Field

from .arithmetic import conv_output_length, effective_kernel, pair, receptive_field_step
from .errors import GeometryError, InfeasibleError, LimitError, SpecError
from .walk import BYTES_PER_ELEMENT

Objective = Literal["params", "macs", "layers", "capacity"]
Activation = Literal["relu", "none"]
ProgressFn = Callable[[int, "int | None", str], None]

DEFAULT_KERNEL_SIZES = (3, 5, 7)
DEFAULT_STRIDES = (1, 2)
DEFAULT_DILATIONS = (1,)
DEFAULT_WIDTHS = (16, 32, 64, 128)
DEFAULT_MAX_STATES = 5_000_000
# Capacity's sums bitsets: at most this many bits each (budget / granularity), each charged 1 + bits/1024 states
SUMS_MAX_BITS = 1 << 22

_INF = 1 << 62
_HUGE = 10**12  # larger sizes are no real image and only make the messages unreadable
_UNREACHABLE = (_INF, _INF, _INF, _INF)
# Components of a cost vector (params, MACs, layers, activation bytes), and the lexicographic order each
# objective compares them in; capacity negates params (most first). "activation" is internal (_explain).
_P, _M, _L, _A = 0, 1, 2, 3
_ORDER = {
    "params": (_P, _L, _M), "macs": (_M, _L, _P), "layers": (_L, _M, _P), "capacity": (_P, _M, _L), "activation": (_A, _P, _M),
}
OBJECTIVES = ("params", "macs", "layers", "capacity")
_STATEMENT = {
    "params": "minimised total params; ties go to fewer layers (convs), then fewer MACs",
    "macs": "minimised total MACs; ties go to fewer layers (convs), then fewer params",
    "layers": "minimised the number of conv layers; ties go to fewer MACs, then fewer params",
    "capacity": "maximised total params within param_budget (the budget spent on width); ties go to fewer MACs, then "
                "fewer layers (convs)",
}
ACTIVATION_BYTES_RULE = (
    "activation bytes = 4 (float32) x the output elements, batch included, of every layer of the design's `layers` "
    "spec (each conv2d, and its batchnorm2d and relu when the spec has them), at input_shape: what shape_calculator "
    "reports as total_activation_bytes for that spec"
)


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
    activation_bytes: int = Field(description=ACTIVATION_BYTES_RULE)
    warnings: list[str] = Field(
        default_factory=list,
        description="layers that add no spatial context: their input already sees the whole image (what "
                    "reject_redundant=true rejects)",
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
    max_macs: int | None = None
    max_activation_bytes: int | None = None
    min_output_size: list[int] | None = Field(None, description="[h, w]: every conv's output at least this")
    batch_norm: bool
    activation: Activation
    monotone_widths: bool
    reject_gridding: bool
    reject_redundant: bool


class DesignReport(BaseModel):
    """Result of design_architecture: the best designs first, and whether that is proven."""

    designs: list[Design] = Field(description="up to top_k distinct designs, best first")
    optimal: bool = Field(description="true when the whole search space was covered, so `designs` are provably the best")
    objective_statement: str = Field(description="what was minimised or maximised, and the tie-breaks, in words")
    optimal_over: str = Field(description="the space and constraints over which `optimal` holds, in words")
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

    def __init__(
        self, space: SearchSpace, budget: int | None, *, monotone: bool, gridding: bool, redundant: bool,
        max_macs: int | None = None, max_act: int | None = None,
    ):
        self.space = space
        shape = space.input_shape
        self.n = shape[0] if len(shape) == 4 else 1
        self.c0, self.h0, self.w0 = shape[-3], shape[-2], shape[-1]
        self.target = max(space.target_receptive_field)  # square kernels: the RF is the same on both axes
        self.out = tuple(space.output_size) if space.output_size else None
        self.max_layers = space.max_layers
        self.widths = space.widths
        self.wmin, self.wmax = space.widths[0], space.widths[-1]
        self.bn = 2 if space.batch_norm else 0  # BatchNorm affine: 2 params per channel
        self.budget = _INF if budget is None else budget
        self.max_macs = _INF if max_macs is None else max_macs
        self.max_act = _INF if max_act is None else max_act
        self.track_act = max_act is not None  # activation bytes enter the dominance only when they are constrained
        # bytes per output pixel per channel of a conv: its own output, and the BatchNorm's and ReLU's in the spec
        self.act_unit = BYTES_PER_ELEMENT * self.n * (1 + bool(space.batch_norm) + (space.activation == "relu"))
        self.min_h, self.min_w = space.min_output_size or (1, 1)
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
        self._len_w_memo: dict[tuple[int, int], int] = self._len_memo if self.min_w == self.min_h else {}
        self._bound_memo: dict[tuple, tuple[int, int, int, int]] = {}
        self._upper_memo: dict[tuple, int] = {}
        self._sums_memo: dict[tuple, int] = {}
        self._area_memo: dict[tuple, int] = {}
        self.sum_states = 0
        # Every layer's params are a multiple of g, so the sums a completion can add are bitsets of budget // g + 1 bits
        # (capacity only; 0 = no bitsets: the bound falls back to the budget itself)
        self.sum_g = self.sum_bits = 0
        if budget is not None:
            g = 0
            for co in space.widths:
                for c in {self.c0, *space.widths}:
                    for k in space.kernel_sizes:
                        g = gcd(g, co * (c * k * k + 1 + self.bn))
            if budget // g + 1 <= SUMS_MAX_BITS:
                self.sum_g, self.sum_bits = g, budget // g + 1
        self.sum_mask = (1 << self.sum_bits) - 1
        self.sum_cost = 1 + self.sum_bits // 1024
        self.sum_check = 63 if self.sum_bits <= 1 << 16 else 0  # long bitsets: check the limits after every state
        self.generated = self.ticks = 0
        self.max_states = DEFAULT_MAX_STATES
        self.deadline = float("inf")
        self.should_stop: Callable[[], bool] | None = None

    # sizes and the relaxed bounds -----------------------------------------------------------------

    def _length(self, size: int, ci: int, minimum: int, memo: dict) -> int:
        key = (size, ci)
        got = memo.get(key)
        if got is None:
            c = self.choices[ci]
            try:
                got = conv_output_length(size, c.kernel, c.stride, c.padding, c.padding, c.dilation)
            except GeometryError:
                got = 0
            if got < minimum:
                got = 0
            memo[key] = got
        return got

    def length(self, size: int, ci: int) -> int:
        """Output height of choice ci on `size` px, 0 when the kernel does not fit or the output is below min_output_size."""
        got = self._len_memo.get((size, ci))
        return got if got is not None else self._length(size, ci, self.min_h, self._len_memo)

    def length_w(self, size: int, ci: int) -> int:
        """Output width of choice ci on `size` px, 0 when the kernel does not fit or the output is below min_output_size."""
        got = self._len_w_memo.get((size, ci))
        return got if got is not None else self._length(size, ci, self.min_w, self._len_w_memo)

    def start_need(self) -> int:
        return max(0, self.target - 1)  # RF starts at 1 px

    @staticmethod
    def next_need(need: int, choice: _Choice) -> int:
        # every later layer grows the RF by a multiple of the new effective stride: round up
        return -(-max(0, need - choice.growth) // choice.stride)

    def geometry_done(self, h: int, w: int, need: int) -> bool:
        return need == 0 and (self.out is None or (h, w) == self.out)

    def _next_q(self, q: int, ch: _Choice, need2: int, rem: int) -> int | None:
        """The bound's gridding view after one more layer (see bound), None when that layer leaves holes for good."""
        if q < 0:
            return q
        q2 = (q + ch.growth) // ch.stride
        if need2 and q2 < self.dmin_wide:
            return None
        return min(q2, self.q_cap[rem - 1])

    def bound(self, h: int, w: int, need: int, c: int, rem: int, q: int = -1) -> tuple[int, int, int, int]:
        """Least (params, MACs, layers, activation bytes) still to pay, each on its own, every later layer at the smallest width.

        With reject_gridding, q = floor(RF / effective stride) (capped where it no longer matters): a stack whose
        RF falls behind its effective stride can never fill the holes (see next_extra), so the bound forbids it.
        """
        key = (h, w, need, c, rem, q)
        got = self._bound_memo.get(key)
        if got is not None:
            return got
        if self.geometry_done(h, w, need):
            res = (0, 0, 0, 0)
        elif rem == 0:
            res = _UNREACHABLE
        else:
            bp = bm = bl = ba = _INF
            wmin, n, bn, unit = self.wmin, self.n, self.bn, self.act_unit
            for ci, ch in enumerate(self.choices):
                ho = self.length(h, ci)
                wo = self.length_w(w, ci) if ho else 0
                if not wo:
                    continue
                need2 = self.next_need(need, ch)
                q2 = q
                if q >= 0:  # inline _next_q: the bound is the hot path of the search
                    q2 = (q + ch.growth) // ch.stride
                    if need2 and q2 < self.dmin_wide:
                        continue
                    q2 = min(q2, self.q_cap[rem - 1])
                cp, cm, cl, ca = self.bound(ho, wo, need2, wmin, rem - 1, q2)
                if cp >= _INF:
                    continue
                kk = ch.kernel * ch.kernel
                bp = min(bp, wmin * (c * kk + 1 + bn) + cp)
                bm = min(bm, ho * wo * wmin * c * kk * n + cm)
                bl = min(bl, 1 + cl)
                ba = min(ba, ho * wo * wmin * unit + ca)
            res = (bp, bm, bl, ba) if bp < _INF else _UNREACHABLE
        self._bound_memo[key] = res
        if len(self._bound_memo) & 255 == 0:
            self.check()
        return res

    def upper(self, h: int, w: int, need: int, c: int, rem: int, q: int = -1) -> int:
        """Most params the rest can add (every later layer at the largest width, the budget ignored); -1 when no goal is reachable.

        Params grow with both widths of every layer, so for each sequence of kernels, strides and dilations the
        largest widths give the most; the max over those sequences is exact for the relaxed problem (the same
        geometry the bound walks), hence never below what a real completion adds.
        """
        key = (h, w, need, c, rem, q)
        got = self._upper_memo.get(key)
        if got is not None:
            return got
        best = 0 if self.geometry_done(h, w, need) else -1
        if rem > 0:
            wmax, bn = self.wmax, self.bn
            for ci, ch in enumerate(self.choices):
                ho = self.length(h, ci)
                wo = self.length_w(w, ci) if ho else 0
                if not wo:
                    continue
                need2 = self.next_need(need, ch)
                q2 = self._next_q(q, ch, need2, rem)
                if q2 is None:
                    continue
                sub = self.upper(ho, wo, need2, wmax, rem - 1, q2)
                if sub >= 0:
                    best = max(best, wmax * (c * ch.kernel * ch.kernel + 1 + bn) + sub)
        self._upper_memo[key] = best
        if len(self._upper_memo) & 255 == 0:
            self.check()
        return best

    def check(self) -> None:
        """Raise _Stop when a limit is reached; called every few thousand steps."""
        if self.created() > self.max_states:
            raise _Stop("max_states")
        if time.perf_counter() > self.deadline:
            raise _Stop("time_limit_s")
        if self.should_stop is not None and self.should_stop():
            raise _Stop("cancelled")

    def created(self) -> int:
        return self.generated + len(self._bound_memo) + len(self._upper_memo) + self.sum_states + len(self._area_memo)

    def sums(self, h: int, w: int, need: int, c: int, rem: int, q: int = -1) -> int:
        """Bitset of the params the rest can add, up to the budget: bit i when a relaxed completion (the bound's) adds i*sum_g.

        The relaxation allows every real completion, so the largest set bit at or below the room left in the budget is
        never below what a real completion that fits adds; without the options and limits it is exact.
        """
        key = (h, w, need, c, rem, q)
        got = self._sums_memo.get(key)
        if got is not None:
            return got
        bits = 1 if self.geometry_done(h, w, need) else 0
        if rem > 0:
            g, nbits, bn, memo = self.sum_g, self.sum_bits, self.bn, self._sums_memo
            for ci, ch in enumerate(self.choices):
                ho = self.length(h, ci)
                wo = self.length_w(w, ci) if ho else 0
                if not wo:
                    continue
                need2 = self.next_need(need, ch)
                q2 = self._next_q(q, ch, need2, rem)
                if q2 is None:
                    continue
                kk = ch.kernel * ch.kernel
                for co in self.widths:
                    shift = co * (c * kk + 1 + bn) // g
                    if shift >= nbits:
                        break  # widths ascend
                    sub = memo.get((ho, wo, need2, co, rem - 1, q2))
                    if sub is None:
                        sub = self.sums(ho, wo, need2, co, rem - 1, q2)
                    if sub:
                        bits |= sub << shift
            bits &= self.sum_mask
        self._sums_memo[key] = bits
        self.sum_states += self.sum_cost
        if len(self._sums_memo) & self.sum_check == 0:
            self.check()
        return bits

    def least_area(self, h: int, w: int, rem: int) -> int:
        """Smallest h*w a map of h x w px can shrink to within rem more layers (no layer here enlarges a map)."""
        key = (h, w, rem)
        got = self._area_memo.get(key)
        if got is None:
            got = h * w
            if rem > 0:
                for ci in range(len(self.choices)):
                    ho = self.length(h, ci)
                    wo = self.length_w(w, ci) if ho else 0
                    if wo:
                        got = min(got, self.least_area(ho, wo, rem - 1))
            self._area_memo[key] = got
        return got

    def capacity_key(self, p2: int, m2: int, nl: int, bm: int, bl: int, bkey: tuple) -> tuple[int, int, int, bool] | None:
        """Capacity's A* key of a label (params p2, MACs m2, layers nl; bound MACs bm and layers bl; bound key bkey),
        and whether its largest completion fits the budget; None when no completion fits it.

        Key (-most params reachable within the budget, least MACs of a completion with that many params, least layers):
        optimistic, since a completion with fewer params sorts after it whatever its MACs. MACs of a conv = its weights
        x its output area, so adding d params over r more layers costs at least (d - r * wmax * (1 + BN)) x the
        smallest area left, per batch item.
        """
        ho, wo, _, _, rem, _ = bkey
        up = self._upper_memo.get(bkey)
        if up is None:
            up = self.upper(*bkey)
        if up < 0:
            return None
        fits_all = p2 + up <= self.budget
        if fits_all:
            most = p2 + up
        elif self.sum_g:
            bits = self._sums_memo.get(bkey)
            if bits is None:
                bits = self.sums(*bkey)
            room = (self.budget - p2) // self.sum_g
            bits &= (2 << room) - 1
            if not bits:
                return None
            most = p2 + (bits.bit_length() - 1) * self.sum_g
        else:
            most = self.budget
        weights = most - p2 - rem * self.wmax * (1 + self.bn)
        if weights > 0:
            bm = max(bm, weights * self.least_area(ho, wo, rem) * self.n)
        return (-most, m2 + bm, nl + bl, fits_all)

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

    def fits(self, g: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
        """Whether a label with cost g and bound b can still meet param_budget, max_macs and max_activation_bytes."""
        return (
            b[_P] < _INF and g[_P] + b[_P] <= self.budget and g[_M] + b[_M] <= self.max_macs
            and g[_A] + b[_A] <= self.max_act
        )

    # the search -----------------------------------------------------------------------------------

    def run(
        self,
        objective: str,
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
        # node storage, one entry per label: parent, (choice index, width), (params, MACs, layers, activation bytes, 0
        # when neither constrained nor minimised), state, and (capacity only) whether the label's largest completion
        # stays within the budget
        self.parent = [-1]
        self.pick = [(-1, self.c0)]
        self.cost = [(0, 0, 0, 0)]
        self.state = [(self.h0, self.w0, self.start_need(), self.c0, self.start_extra())]
        self.free = [False]
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

    def _loop(self, objective: str, top_k: int, pareto: bool, goals: list[int], progress: ProgressFn | None) -> int:
        cap = objective == "capacity" and not pareto
        order = (_P, _M, _L) if pareto else _ORDER[objective]
        o0, o1, o2 = order
        keep = 1 if pareto else top_k
        budget, max_macs, max_act, widths, max_layers = self.budget, self.max_macs, self.max_act, self.widths, self.max_layers
        n, bn, monotone, unit = self.n, self.bn, self.monotone, self.act_unit
        track = self.track_act or objective == "activation"  # minimising activation bytes: they must enter the dominance
        parent, pick, cost, state, heap, front, free = self.parent, self.pick, self.cost, self.state, self.heap, self.front, self.free
        # labels kept per state: (params, MACs, layers, activation bytes; 0 when not tracked). For capacity, labels
        # whose largest completion may pass the budget are kept per (state, params), the others per state.
        kept: dict[tuple, list[tuple[int, int, int, int]]] = {}
        push, pop = heapq.heappush, heapq.heappop
        memo_get = self._bound_memo.get
        capacity_key = self.capacity_key

        def dominated(labels: list[tuple[int, int, int, int]] | None, p: int, m: int, layers: int, a: int) -> bool:
            # dropped only when `keep` kept labels are at least as good on all four: their completions come first
            # (and meet every limit this one's do)
            if not labels:
                return False
            count = 0
            for q in labels:
                if q[0] <= p and q[1] <= m and q[2] <= layers and q[3] <= a:
                    count += 1
                    if count >= keep:
                        return True
            return False

        def dominated_free(labels: list[tuple[int, int, int, int]] | None, p: int, m: int, layers: int, a: int) -> bool:
            # capacity, labels whose every completion fits the budget: more params is at least as good
            if not labels:
                return False
            count = 0
            for q in labels:
                if q[0] >= p and q[1] <= m and q[2] <= layers and q[3] <= a:
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

        g0 = self.grid_part(self.start_extra(), max_layers)
        b0 = self.bound(self.h0, self.w0, self.start_need(), self.c0, max_layers, g0)
        if self.fits(cost[0], b0):
            if cap:
                key0 = self.capacity_key(0, 0, 0, b0[_M], b0[_L], (self.h0, self.w0, self.start_need(), self.c0, max_layers, g0))
                key0 = None if key0 is None else key0[:3]
            else:
                key0 = (b0[o0], b0[o1], b0[o2])
            if key0 is not None:
                heap.append((*key0, 0, 0, False))
        self.explored = explored = 0
        seq = 0
        next_check = 2048
        while heap:
            if seq >= next_check:
                next_check = seq + 2048
                tick(explored)
            entry = pop(heap)
            nid = entry[4]
            p, m, layers, a = cost[nid]
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
                if cap and not free[nid]:
                    pool, test = (st, p), dominated
                else:
                    pool, test = st, (dominated_free if cap else dominated)
                labels = kept.get(pool)
                if labels is None:
                    labels = kept[pool] = []
                elif test(labels, p, m, layers, a):
                    continue
                labels.append((p, m, layers, a))
            explored += 1
            h, w, need, c, extra = st
            if layers >= 1 and self.geometry_done(h, w, need) and (not extra or self.extra_done(extra)):
                if not (pareto and beaten(p, m, layers)):
                    seq += 1
                    if cap:
                        push(heap, (-p, m, layers, seq, nid, True))
                    else:
                        g = (p, m, layers, a)
                        push(heap, (g[o0], g[o1], g[o2], seq, nid, True))
            if layers >= max_layers:
                continue
            rem = max_layers - layers - 1
            nl = layers + 1
            for ci, ch in enumerate(self.choices):
                ho = self.length(h, ci)
                wo = self.length_w(w, ci) if ho else 0
                if not wo:
                    continue
                need2 = self.next_need(need, ch)
                nx = self.next_extra(extra, ch, need2) if extra else extra
                if nx is None:
                    continue
                gx = self.grid_part(nx, rem) if extra else -1
                kk = ch.kernel * ch.kernel
                area = ho * wo * kk * c * n
                act_area = ho * wo * unit
                for co in widths:
                    if monotone and layers and co < c:
                        continue
                    bkey = (ho, wo, need2, co, rem, gx)
                    b = memo_get(bkey)
                    bp, bm, bl, ba = b if b is not None else self.bound(*bkey)
                    if bp >= _INF:
                        break  # reachability does not depend on the width
                    # widths ascend, and each limit's used part and bound grow with the width
                    p2 = p + co * (c * kk + 1 + bn)
                    if p2 + bp > budget:
                        break
                    m2 = m + area * co
                    if m2 + bm > max_macs:
                        break
                    if track:
                        a2 = a + act_area * co
                        if a2 + ba > max_act:
                            break
                    else:
                        a2 = 0  # unconstrained and not minimised: not tracked (the designs are re-walked)
                    st2 = (ho, wo, need2, co, nx)
                    if cap:
                        ck = capacity_key(p2, m2, nl, bm, bl, bkey)
                        if ck is None:
                            continue
                        fits_all = ck[3]
                        if fits_all:
                            if dominated_free(kept.get(st2), p2, m2, nl, a2):
                                continue
                        elif dominated(kept.get((st2, p2)), p2, m2, nl, a2):
                            continue
                        fkey = ck[:3]
                        free.append(fits_all)
                    else:
                        if dominated(kept.get(st2), p2, m2, nl, a2):
                            continue
                        f = (p2 + bp, m2 + bm, nl + bl, a2 + ba)
                        if pareto and beaten(f[0], f[1], f[2]):
                            continue
                        fkey = (f[o0], f[o1], f[o2])
                    parent.append(nid)
                    pick.append((ci, co))
                    cost.append((p2, m2, nl, a2))
                    state.append(st2)
                    seq += 1
                    push(heap, (*fkey, seq, len(parent) - 1, False))
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

    def seq_cost(self, seq: Sequence[tuple[int, int]]) -> tuple[int, int, int, int] | None:
        """(params, MACs, layers, activation bytes) of a sequence, None when a layer does not fit."""
        p = m = a = 0
        c, h, w = self.c0, self.h0, self.w0
        for ci, co in seq:
            ch = self.choices[ci]
            h = self.length(h, ci)
            w = self.length_w(w, ci) if h else 0
            if not w:
                return None
            kk = ch.kernel * ch.kernel
            p += co * (c * kk + 1 + self.bn)
            m += h * w * co * c * kk * self.n
            a += h * w * co * self.act_unit
            c = co
        return p, m, len(seq), a

    @staticmethod
    def rank_key(objective: str, g: tuple[int, int, int, int]) -> tuple[int, int, int]:
        """A finished design's place in the objective's order (smaller first)."""
        if objective == "capacity":
            return (-g[_P], g[_M], g[_L])
        o0, o1, o2 = _ORDER[objective]
        return (g[o0], g[o1], g[o2])

    def complete(self, nid: int, objective: str, steps: int = 2000) -> list[tuple[int, int]] | None:
        """A fitting design that extends node nid depth-first along the relaxed bound (at most `steps` nodes), or None.

        For anytime answers. The options' state can dead-end where the bound did not (gridding), hence the
        backtracking. Capacity goes on past a fitting design while a layer still fits, and among children as
        promising as each other takes the one with the most params now (without the sums bitsets every child
        promises the budget).
        """
        cap = objective == "capacity"
        left = [steps]

        def dfs(g: tuple, st: tuple, seqs: list) -> list | None:
            left[0] -= 1
            if left[0] < 0:
                return None
            h, w, need, c, extra = st
            done = g[_L] >= 1 and self.geometry_done(h, w, need) and self.extra_done(extra)
            if done and not cap:
                return seqs
            options: list[tuple] = [((-g[_P], 0, g[_M], g[_L]), None)] if done else []
            rem = self.max_layers - g[_L] - 1
            for ci, ch in enumerate(self.choices if rem >= 0 else ()):
                ho = self.length(h, ci)
                wo = self.length_w(w, ci) if ho else 0
                need2 = self.next_need(need, ch)
                nx = self.next_extra(extra, ch, need2) if (wo and extra) else extra
                if not wo or nx is None:
                    continue
                gx = self.grid_part(nx, rem) if nx else -1
                for co in self.widths:
                    if self.monotone and g[_L] and co < c:
                        continue
                    b = self.bound(ho, wo, need2, co, rem, gx)
                    kk = ch.kernel * ch.kernel
                    g2 = (g[_P] + co * (c * kk + 1 + self.bn), g[_M] + ho * wo * kk * c * co * self.n, g[_L] + 1,
                          g[_A] + ho * wo * co * self.act_unit)
                    if not self.fits(g2, b):
                        continue
                    if cap:
                        f = self.capacity_key(g2[_P], g2[_M], g2[_L], b[_M], b[_L], (ho, wo, need2, co, rem, gx))
                        if f is None:
                            continue
                        f = (f[0], -g2[_P], f[1], f[2])
                    else:
                        f = self.rank_key(objective, tuple(x + y for x, y in zip(g2, b, strict=True)))
                    options.append((f, (ci, co, g2, (ho, wo, need2, co, nx))))
            options.sort(key=lambda o: o[0])
            for _, step in options:
                if step is None:
                    return seqs  # capacity: stopping here beats every layer that still fits
                ci, co, g2, st2 = step
                got = dfs(g2, st2, [*seqs, (ci, co)])
                if got is not None:
                    return got
            return None

        return dfs(self.cost[nid], self.state[nid], self.path(nid))


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
    total_p = total_b = total_m = total_a = 0
    reached = False
    taps: list[tuple[int, int]] = []  # (step, k-1) of each conv: the offsets one output reads are their sums
    warnings: list[str] = []
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
        if rf >= search.cover:
            warnings.append(
                f"conv {i} (layers[{len(spec)}], k{k}s{s}d{d}c{co}) adds no spatial context: every pixel of its "
                f"{h}x{w} input already sees the whole {search.h0}x{search.w0} image (receptive field {rf} px); "
                "reject_redundant=true leaves such layers out"
            )
        element = n * co * ho * wo * BYTES_PER_ELEMENT  # one output of this size: the conv's, a BatchNorm's, a ReLU's
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
        total_a += element
        if space.batch_norm:
            spec.append({"type": "batchnorm2d", "num_features": co})
            why.append(f"normalises the {co} channels of conv {i} ({2 * co} affine params, {2 * co + 1} buffers).")
            total_p += 2 * co
            total_b += 2 * co + 1
            total_a += element
        if activation == "relu":
            total_a += element
            spec.append({"type": "relu"})
            why.append(f"non-linearity after conv {i}, so the stack does not collapse into one linear map.")
        h, w, c, rf, jump = ho, wo, co, rf2, jump2
    return Design(
        rank=rank, layers=spec, why=why, convs=convs, depth=len(seq), params=total_p, buffers=total_b, macs=total_m,
        receptive_field=[rf, rf], effective_stride=[jump, jump], output_shape=[*batch, c, h, w],
        summary=_summary(search, seq), receptive_field_holes=_has_holes(taps), activation_bytes=total_a,
        warnings=warnings,
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


def _limit(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{name} must be an int >= 1 (or omitted), got {value!r}")
    if value > _HUGE**2:
        raise SpecError(f"{name} must be at most {_HUGE**2:,}, got a larger one")
    return value


def _statements(space: SearchSpace, optimal: bool, stopped_by: str | None) -> tuple[str, str]:
    """(objective_statement, optimal_over): what was optimised, and the space and constraints that `optimal` covers."""
    objective = _STATEMENT[space.objective]
    if space.objective == "capacity":
        objective = objective.replace(
            "within param_budget (the budget spent on width)",
            f"within param_budget {space.param_budget:,} (the budget spent on width)" if space.param_budget is not None
            else "(no param_budget given: the most the space holds)",
        )
    mos = space.min_output_size or [1, 1]
    bn = ", then a BatchNorm2d" if space.batch_norm else ""
    fits = []
    if space.param_budget is not None:
        fits.append(f"params <= {space.param_budget:,}")
    fits.append(f"receptive field >= {space.target_receptive_field} px ([h, w])")
    fits.append(f"every conv's output >= {mos} px ([h, w])")
    if space.output_size is not None:
        fits.append(f"final spatial size == {space.output_size}")
    if space.max_macs is not None:
        fits.append(f"MACs <= {space.max_macs:,}")
    if space.max_activation_bytes is not None:
        fits.append(f"activation bytes <= {space.max_activation_bytes:,} ({ACTIVATION_BYTES_RULE})")
    if space.monotone_widths:
        fits.append("out_channels never shrink")
    if space.reject_gridding:
        fits.append("no holes in the receptive field")
    if space.reject_redundant:
        fits.append("no conv whose input already sees the whole image")
    over = (
        f"every stack of 1..{space.max_layers} conv2d layers on a {space.input_shape} input, each with kernel_size from "
        f"{space.kernel_sizes}, stride from {space.strides}, dilation from {space.dilations} (a 1x1 kernel at the "
        f"smallest only: the others are the same network), out_channels from {space.widths}, padding "
        f"dilation*(kernel_size-1)//2 and a bias{bn}, that fits: {'; '.join(fits)}"
    )
    if optimal:
        return objective, "proven best over " + over
    return objective, f"NOT proven (the search stopped by {stopped_by}): the best found so far in " + over


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
    max_macs: int | None = None,
    max_activation_bytes: int | None = None,
    min_output_size: int | Sequence[int] | None = None,
) -> DesignReport:
    """The top_k best conv2d stacks for an input, a param budget and a target receptive field, proven optimal when `optimal`."""
    began = time.perf_counter()
    if not (isinstance(input_shape, (list, tuple)) and len(input_shape) in (3, 4)) or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in input_shape
    ):
        raise SpecError(f"input_shape must be [C, H, W] or [N, C, H, W] of ints >= 1, got {input_shape!r}")
    if param_budget is not None and (isinstance(param_budget, bool) or not isinstance(param_budget, int) or param_budget < 1):
        raise SpecError(f"param_budget must be an int >= 1, got {param_budget!r}")
    if objective not in OBJECTIVES:
        raise SpecError(f"objective must be 'params', 'macs', 'layers' or 'capacity', got {objective!r}")
    if max_layers < 1 or top_k < 1:
        raise SpecError(f"max_layers and top_k must be >= 1, got max_layers={max_layers}, top_k={top_k}")
    target = pair(target_receptive_field, "target_receptive_field", minimum=1)
    out = None if output_size is None else pair(output_size, "output_size", minimum=1)
    floor = None if min_output_size is None else pair(min_output_size, "min_output_size", minimum=1)
    max_macs = _limit(max_macs, "max_macs")
    max_activation_bytes = _limit(max_activation_bytes, "max_activation_bytes")
    for name, values in (("input_shape", input_shape), ("target_receptive_field", target), ("output_size", out or ()),
                         ("min_output_size", floor or ())):
        if any(v > _HUGE for v in values):
            raise SpecError(f"{name} values must be at most {_HUGE:,}, got a larger one")
    if param_budget is not None and param_budget > _HUGE**2:
        raise SpecError(f"param_budget must be at most {_HUGE**2:,}, got a larger one")
    if out is not None and floor is not None and (out[0] < floor[0] or out[1] < floor[1]):
        raise InfeasibleError(
            f"output_size {list(out)} is below min_output_size {list(floor)}: the last conv's output is both; "
            "lower min_output_size or raise output_size"
        )
    space = SearchSpace(
        input_shape=list(input_shape), param_budget=param_budget, target_receptive_field=list(target),
        output_size=None if out is None else list(out), max_layers=max_layers,
        kernel_sizes=_int_list(kernel_sizes, "kernel_sizes"), strides=_int_list(strides, "strides"),
        dilations=_int_list(dilations, "dilations"), widths=_int_list(widths, "widths"), objective=objective,
        top_k=top_k, max_macs=max_macs, max_activation_bytes=max_activation_bytes,
        min_output_size=None if floor is None else list(floor), batch_norm=batch_norm, activation=activation,
        monotone_widths=monotone_widths, reject_gridding=reject_gridding, reject_redundant=reject_redundant,
    )
    options = dict(monotone=monotone_widths, gridding=reject_gridding, redundant=reject_redundant)
    limits = dict(budget=param_budget, max_macs=max_macs, max_act=max_activation_bytes)

    def new_search() -> _Search:
        return _Search(space, limits["budget"], max_macs=max_macs, max_act=max_activation_bytes, **options)

    search = new_search()
    deadline = began + time_limit_s
    outcome = search.run(
        objective, top_k, deadline=deadline, max_states=max_states, progress=progress, should_stop=should_stop
    )
    seqs = [search.path(g) for g in outcome.goals]
    notes: list[str] = []
    if not outcome.optimal:
        seqs = _anytime(search, seqs, top_k, objective)
        notes.append(
            f"stopped by {outcome.stopped_by} after {outcome.explored:,} states: the designs are the best found so far, "
            "not proven best"
        )
        if not seqs:
            raise LimitError(
                f"the search stopped ({outcome.stopped_by}) after {outcome.explored:,} states expanded "
                f"({search.created():,} created) and {time.perf_counter() - began:.1f} s "
                "before any design was found; "
                "raise time_limit_s / max_states or narrow the space (fewer widths, kernel_sizes, max_layers)"
            )
    elif not seqs:
        raise InfeasibleError(
            _explain(space, limits, options, max(deadline, time.perf_counter() + min(1.0, time_limit_s)), max_states,
                     should_stop)
        )
    designs = [_build_design(search, seq, i + 1, activation) for i, seq in enumerate(seqs)]
    if not reject_gridding and designs[0].receptive_field_holes:
        notes.append(
            "design 1's receptive field has holes (strides or dilations skip input pixels, e.g. strided 1x1 convs); "
            "pass reject_gridding=true for designs that see every pixel of their receptive field"
        )
    if designs[0].warnings:
        notes.append(
            f"design 1 has {len(designs[0].warnings)} conv(s) whose input already sees the whole image (its warnings); "
            "pass reject_redundant=true to leave them out, or min_output_size to keep the map from collapsing"
        )
    front: list[ParetoPoint] = []
    pareto_complete = False
    if pareto and outcome.optimal:
        fsearch = new_search()
        fsearch._bound_memo = search._bound_memo  # same relaxation, same geometry
        fsearch._len_memo, fsearch._len_w_memo = search._len_memo, search._len_w_memo
        # Seed the front with the lexicographic optimum of each minimising objective (each is on the front): early
        # pruning. Capacity's optimum is no seed: a design with the most params need not be on the front.
        seeds = [(*search.cost[outcome.goals[0]][:3], tuple(seqs[0]))] if objective != "capacity" else []
        for other in ("params", "macs", "layers"):
            if other != objective:
                one = new_search()
                one._bound_memo, one._len_memo, one._len_w_memo = search._bound_memo, search._len_memo, search._len_w_memo
                got = one.run(other, 1, deadline=deadline, max_states=max_states, should_stop=should_stop)
                if got.goals:
                    seeds.append((*one.cost[got.goals[0]][:3], tuple(one.path(got.goals[0]))))
        kept_seeds: list[tuple] = []
        for seed in sorted(seeds, key=lambda x: x[:3]):
            if not any(q[0] <= seed[0] and q[1] <= seed[1] and q[2] <= seed[2] for q in kept_seeds):
                kept_seeds.append(seed)
        fout = fsearch.run(
            "params", 1, pareto=True, deadline=deadline, max_states=max_states, should_stop=should_stop, front=kept_seeds
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
    statement, over = _statements(space, outcome.optimal, outcome.stopped_by)
    return DesignReport(
        designs=designs, optimal=outcome.optimal, objective_statement=statement, optimal_over=over,
        explored=outcome.explored, elapsed_s=round(time.perf_counter() - began, 4), stopped_by=outcome.stopped_by,
        pareto_front=front, pareto_complete=pareto_complete, search_space=space, notes=notes,
    )


def _anytime(search: _Search, seqs: list, top_k: int, objective: str) -> list:
    """Proven designs first, then greedy completions of the most promising open labels (and of the empty stack).

    The search has hit a limit, so the completions get a short grace of their own (0.25 s, 100,000 states); when that
    runs out too, capacity drops its sums bitsets (the costly part) and tries once more. A cancel ends it at once.
    """
    found = {tuple(s) for s in seqs}
    extra = []
    nids = [entry[4] for entry in heapq.nsmallest(64, search.heap)] + [0]
    for attempt in range(2):
        search.deadline = time.perf_counter() + 0.25
        search.max_states = search.created() + 100_000
        try:
            for nid in nids:
                seq = search.complete(nid, objective)
                if seq is None or tuple(seq) in found:
                    continue
                found.add(tuple(seq))
                extra.append(seq)
            break
        except _Stop as stop:
            if stop.args[0] == "cancelled" or attempt or objective != "capacity" or not search.sum_g:
                break
            search.sum_g = 0
    extra.sort(key=lambda seq: search.rank_key(objective, search.seq_cost(seq)))
    return (seqs + extra)[:top_k]


def _explain(
    space: SearchSpace, limits: dict, options: dict, deadline: float, max_states: int,
    should_stop: Callable[[], bool] | None,
) -> str:
    """Which constraint is out of reach, and by how much."""
    try:
        return _explain_within(space, limits, options, deadline, max_states, should_stop)
    except _Stop as stop:
        return (
            "no design in the space fits (the search covered all of it), and working out which constraint is out of "
            f"reach stopped ({stop.args[0]}); relax param_budget, max_macs, max_activation_bytes, "
            "target_receptive_field, output_size or min_output_size, "
            "or widen the space (max_layers, kernel_sizes, strides, dilations, widths)"
        )


# The resource limits _explain checks: (objective that minimises it, argument, limits key, cost component, unit, fix)
_RESOURCES = (
    ("params", "param_budget", "budget", _P, "params", "raise param_budget or allow smaller widths"),
    ("macs", "max_macs", "max_macs", _M, "MACs", "raise max_macs, or allow smaller widths or larger strides"),
    ("activation", "max_activation_bytes", "max_act", _A, "activation bytes",
     "raise max_activation_bytes, or allow smaller widths or larger strides"),
)


def _explain_within(
    space: SearchSpace, limits: dict, options: dict, deadline: float, max_states: int,
    should_stop: Callable[[], bool] | None,
) -> str:
    def searcher(sp: SearchSpace = space, opts: dict | None = None, **lims) -> _Search:
        s = _Search(sp, lims.get("budget"), max_macs=lims.get("max_macs"), max_act=lims.get("max_act"),
                    **(opts if opts is not None else dict(monotone=False, gridding=False, redundant=False)))
        s.deadline, s.max_states, s.should_stop = deadline, max_states, should_stop
        return s

    search = searcher()
    layers = space.max_layers
    target = search.target
    h0, w0 = search.h0, search.w0
    where = f"within {layers} layer{'s' if layers != 1 else ''}"
    kit = (f"kernel_sizes {space.kernel_sizes}, strides {space.strides}, dilations {space.dilations}")
    floor = space.min_output_size
    keep = f" that keeps every conv's output at least {floor[0]}x{floor[1]}" if floor else ""
    if floor and (floor[0] > h0 or floor[1] > w0):
        return (
            f"min_output_size {floor} is larger than the {h0}x{w0} input: no conv here enlarges the map (padding is "
            f"dilation*(kernel_size-1)//2), so no output can be that large; lower min_output_size to at most [{h0}, {w0}]"
        )
    best_rf = 1 + _max_growth(search, h0, w0, layers, None, {})
    if best_rf < target:
        text = (
            f"no stack of at most {layers} conv layers ({kit}){keep} reaches receptive field {target} px on "
            f"a {h0}x{w0} input: the largest reachable is {best_rf} px ({target - best_rf} short)"
        )
        if floor:
            loose_rf = 1 + _max_growth(searcher(space.model_copy(update={"min_output_size": None})), h0, w0, layers, None, {})
            if loose_rf >= target:
                return (
                    f"{text}; min_output_size {floor} is what stops it (without it the largest is {loose_rf} px): lower "
                    "min_output_size, raise max_layers, or allow larger kernel_sizes or dilations"
                )
            text += f" (without min_output_size: {loose_rf} px)"
        return text + "; raise max_layers, or allow larger kernel_sizes, dilations or strides"
    if search.out is not None:
        sizes = _reachable_sizes(search, layers)
        if search.out not in sizes:
            near = sorted(sizes, key=lambda s: (abs(s[0] - search.out[0]) + abs(s[1] - search.out[1]), s))[:6]
            return (
                f"output_size {list(search.out)} is not reachable from {h0}x{w0} {where}{keep} "
                f"with {kit}; reachable sizes nearby: {', '.join(f'[{a}, {b}]' for a, b in near)}"
            )
        rf_out = 1 + _max_growth(search, h0, w0, layers, search.out, {})
        if rf_out < target:
            return (
                f"no stack {where}{keep} that ends at output_size {list(search.out)} reaches receptive field {target} px: "
                f"the largest is {rf_out} px ({target - rf_out} short); relax output_size or raise max_layers"
            )
    with_opts = [name for name, flag in (("monotone_widths", options["monotone"]), ("reject_gridding", options["gridding"]),
                                         ("reject_redundant", options["redundant"])) if flag]
    shape = f" ending at output_size {list(search.out)}" if search.out is not None else ""
    opts = f" with {', '.join(with_opts)}" if with_opts else ""
    active = [r for r in _RESOURCES if limits[r[2]] is not None]
    free = searcher(opts=options)
    outcome = free.run("params", 1, deadline=deadline, max_states=max_states, should_stop=should_stop)
    if not outcome.goals:
        if not outcome.optimal:
            return (
                f"no design {where}{shape}{keep} within the limits reaches receptive field {target} px, and the search "
                f"for the smallest one beyond them stopped ({outcome.stopped_by}); raise "
                f"{' / '.join(r[1] for r in active)} or time_limit_s"
            )
        return (
            f"no design {where}{shape}{keep} reaches receptive field {target} px under {', '.join(with_opts)}; "
            "without these options the space has designs: drop one of them or widen the space"
        )
    # Every design here meets the geometry and the options: which limit rules them out, alone, and by how much?
    alone, stopped = [], []
    for objective, name, key, idx, unit, fix in active:
        one, got = (free, outcome) if objective == "params" else (searcher(opts=options), None)
        if got is None:
            got = one.run(objective, 1, deadline=deadline, max_states=max_states, should_stop=should_stop)
        if not got.goals:
            stopped.append(name)
            continue
        least, limit = one.cost[got.goals[0]][idx], limits[key]
        if least <= limit:
            continue
        if objective == "params":
            alone.append(
                f"the smallest design that reaches receptive field {target} px {where}{shape}{keep}{opts} has {least:,} "
                f"params; the budget is {limit:,} ({least - limit:,} over); raise param_budget or allow smaller widths "
                f"(smallest now {space.widths[0]})"
            )
        else:
            alone.append(
                f"the design with the fewest {unit} that reaches receptive field {target} px {where}{shape}{keep}{opts} has "
                f"{least:,} {unit}; {name} is {limit:,} ({least - limit:,} over); {fix}"
            )
    if alone:
        return "; ".join(alone)
    # Each limit alone can be met, together not: the least of each under the others.
    parts = []
    for objective, name, key, idx, unit, _fix in active:
        others = {k: v for k, v in limits.items() if k != key}
        one = searcher(opts=options, **others)
        got = one.run(objective, 1, deadline=deadline, max_states=max_states, should_stop=should_stop)
        met = " and ".join(r[1] for r in active if r[2] != key)
        if got.goals:
            least = one.cost[got.goals[0]][idx]
            parts.append(f"with {met} met, the fewest {unit} is {least:,}: {least - limits[key]:,} over {name} {limits[key]:,}")
        else:
            parts.append(f"no design meets {met} either")
    names = ", ".join(r[1] for r in active)
    return (
        f"each limit alone can be met{' (the searches for ' + ', '.join(stopped) + ' stopped)' if stopped else ''}, but no "
        f"design {where}{shape}{keep}{opts} that reaches receptive field {target} px meets {names} together: "
        + "; ".join(parts) + "; relax one of them"
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
            wo = search.length_w(w, ci) if ho else 0
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
                wo = search.length_w(w, ci) if ho else 0
                if wo:
                    nxt.add((ho, wo))
        nxt -= seen
        seen |= nxt
        frontier = nxt
    return seen
