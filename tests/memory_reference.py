"""PyTorch's own counts for skills.memory: any layer spec or graph as modules, and what torch holds running them.

- `build(layers or graph, in_shape)`: every layer type of the spec as its torch.nn module (channels inferred by running
  zeros through, as tests/torch_reference.py does), real Dropout included; residual/concat blocks are
  torch_reference's; a graph becomes a module whose merges (add, mul, concat) are modules too, so hooks see them.
- `hook_bytes`: the sum of every layer's output bytes, by forward hooks on each leaf module and each block or merge.
- `replay_peak`: the net traced with torch.fx and run, each node's output tensor kept; storages (tensors sharing one
  are one) freed after their last reader; the most bytes alive at once and the module path that allocates then.
- `saved_bytes`: a train-mode forward under torch.autograd.graph.saved_tensors_hooks: the distinct storages autograd
  keeps (by storage identity), parameters and buffers left out.
- `optimizer_state_bytes`: one real optimizer step, then the bytes of its state tensors.

Storage identity is `untyped_storage()._cdata` (the StorageImpl), which also works on the meta device: the batch-32
reference nets run there (shapes and storages without data; tests/test_memory.py checks meta against CPU at batch 1).
torch is imported through pytest.importorskip.
"""

from __future__ import annotations

import functools
import operator
import warnings
from typing import Any

import pytest
from torch_reference import blocks

from skills.spec import validate_graph, validate_layers


@functools.cache
def _classes() -> dict[str, Any]:
    nn = pytest.importorskip("torch").nn
    return {name.lower(): cls for name, cls in vars(nn).items() if isinstance(cls, type) and issubclass(cls, nn.Module)}


@functools.cache
def _merges():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Add(nn.Module):
        def forward(self, *xs):
            return functools.reduce(operator.add, xs)

    class Mul(nn.Module):
        def forward(self, *xs):
            return functools.reduce(operator.mul, xs)

    class Cat(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.dim = dim

        def forward(self, *xs):
            return torch.cat(xs, dim=self.dim)

    class Graph(nn.Module):
        """Runs named nodes in order; `plan` is (key, input keys, is_merge)."""

        def __init__(self, modules, plan, output):
            super().__init__()
            self.mods = nn.ModuleDict(modules)
            self.plan, self.output = plan, output

        def forward(self, x):
            env = {"input": x}
            for key, inputs, is_merge in self.plan:
                args = [env[i] for i in inputs]
                env[key] = self.mods[key](*args) if is_merge else self.mods[key](args[0])
            return env[self.output]

    return Add, Mul, Cat, Graph


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def leaf(layer, x):
    """The torch.nn module of one spec layer (a skills.spec model) reading x."""
    d = layer.model_dump()
    t = d.pop("type")
    cls = _classes()[t]
    c = x.shape[1]
    if t.startswith("conv"):
        d["in_channels"] = c
    elif t.startswith(("batchnorm", "instancenorm")):
        d["num_features"] = c
    elif t == "groupnorm":
        d["num_channels"] = c
    elif t == "linear":
        d["in_features"] = c
    elif "pad" in t and not t.startswith("constant"):
        d.pop("value")
    elif t == "avgpool1d":
        d.pop("divisor_override")
    for onnx_only in ("pads", "convention"):  # the spec's ONNX extensions (None / "pytorch" here): no torch argument
        d.pop(onnx_only, None)
    return cls(**{k: _tuples(v) for k, v in d.items()})


def _net(models, x):
    """(nn.Sequential of validated layer models, its output for x)."""
    torch = pytest.importorskip("torch")
    Residual, Concat = blocks()
    mods = []
    for layer in models:
        if layer.type in ("residual", "concat"):
            paths = [layer.body, layer.shortcut] if layer.type == "residual" else layer.branches
            built = [_net(p, x) for p in paths]
            m = Residual(*[b for b, _ in built]) if layer.type == "residual" else Concat([b for b, _ in built])
            x = m.join([y for _, y in built])
        else:
            m = leaf(layer, x).eval()
            x = m(x)
        mods.append(m)
    return torch.nn.Sequential(*mods), x


def batched(in_shape: list[int], spec: Any, *, graph: bool = False) -> list[int]:
    """in_shape with a batch axis of 1 where the walk reads it without one."""
    from skills.walk import walk

    done = walk(in_shape, graph=spec) if graph else walk(in_shape, spec)
    return in_shape if done.input_shape.n is not None else [1, *in_shape]


def build(spec: Any, in_shape: list[int], *, graph: bool = False):
    """A layer list (or, graph=True, a graph spec) as a module in eval mode, built on CPU with zeros of in_shape."""
    torch = pytest.importorskip("torch")
    x = torch.zeros(batched(in_shape, spec, graph=graph))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", UserWarning)  # padding="same" with an even kernel copies the input
        if not graph:
            return _net(validate_layers(spec), x)[0].eval()
        Add, Mul, Cat, Graph = _merges()
        nodes, out = validate_graph(spec)
        env, mods, plan = {"input": x}, {}, []
        for node in nodes:
            t = node.layer.type
            merge = t in ("add", "mul") or (t == "concat" and not hasattr(node.layer, "branches"))
            if merge:
                m = Cat(node.layer.dim) if t == "concat" else {"add": Add, "mul": Mul}[t]()
                env[node.name] = m(*[env[i] for i in node.inputs])
            else:
                seq, env[node.name] = _net([node.layer], env[node.inputs[0]])
                m = seq[0]
            mods[node.name] = m.eval()
            plan.append((node.name, list(node.inputs), merge))
        return Graph(mods, plan, out).eval()


def _blocky(module) -> bool:
    Residual, Concat = blocks()
    Add, Mul, Cat, _ = _merges()
    return isinstance(module, (Residual, Concat, Add, Mul, Cat))


def hook_bytes(net, x) -> int:
    """Sum of the output bytes of every layer: leaf modules (no children; empty Sequentials are paths, not layers) and
    blocks / merges, by forward hooks."""
    torch = pytest.importorskip("torch")
    total = [0]
    handles = []
    for _, m in net.named_modules():
        if isinstance(m, (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)) or m is net:
            continue
        if not any(m.children()) or _blocky(m):
            handles.append(m.register_forward_hook(lambda mod, args, out: total.__setitem__(0, total[0] + out.numel() * out.element_size())))
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return total[0]


def _storage(t) -> int:
    return t.untyped_storage()._cdata


def replay_peak(net, x) -> tuple[int, str]:
    """(most bytes of distinct tensors alive at once, the module path whose node allocates then) over torch.fx's graph
    of net, run on x: each storage alive from the node that makes it to the last node that reads any tensor on it;
    the output's to the end. The path of a function node (a residual add, a cat) is the block or merge it runs in."""
    torch = pytest.importorskip("torch")
    fx = torch.fx
    traced = fx.symbolic_trace(net)
    nodes = list(traced.graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    outputs: dict[Any, Any] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n):
            value = super().run_node(n)
            outputs[n] = value
            return value

    with torch.no_grad():
        Recorder(traced, garbage_collect_values=False).run(x)
    born, last, size, maker = {}, {}, {}, {}
    for n in nodes:
        v = outputs.get(n)
        if n.op == "output" or not isinstance(v, torch.Tensor):
            continue
        s = _storage(v)
        if s not in born:
            born[s], size[s], maker[s] = index[n], v.untyped_storage().nbytes(), n
        users = [index[u] for u in n.users]
        last[s] = max([last.get(s, index[n]), index[n], *users])
    out = _storage(outputs[nodes[-1].args[0]])
    last[out] = len(nodes)
    live = [0] * (len(nodes) + 2)
    for s in born:
        live[born[s]] += size[s]
        live[last[s] + 1] -= size[s]
    running, peak, at = 0, -1, 0
    for i, d in enumerate(live):
        running += d
        if running > peak:
            peak, at = running, i
    node = nodes[at]
    if node.op == "placeholder":
        return peak, "input"
    if node.op == "call_module":
        path = node.target
    else:
        path = list(node.meta["nn_module_stack"])[-1]
    return peak, path.removeprefix("mods.")


def saved_bytes(net, x) -> int:
    """Bytes of the distinct storages autograd keeps for backward after a train-mode forward of x (which needs no
    gradient), parameters and buffers left out."""
    torch = pytest.importorskip("torch")
    own = {_storage(t) for t in [*net.parameters(), *net.buffers()]}
    saved: list = []
    net.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            net(x)
    finally:
        net.eval()
    seen: dict[int, int] = {}
    for t in saved:
        s = _storage(t)
        if s not in own:
            seen[s] = t.untyped_storage().nbytes()
    return sum(seen.values())


def optimizer_state_bytes(net, x, optimizer: str) -> int:
    """Bytes of the optimizer's state after one step on sum(net(x))."""
    torch = pytest.importorskip("torch")
    params = list(net.parameters())
    opt = {
        "sgd": lambda: torch.optim.SGD(params, lr=0.1),
        "sgd_momentum": lambda: torch.optim.SGD(params, lr=0.1, momentum=0.9),
        "adam": lambda: torch.optim.Adam(params),
        "adamw": lambda: torch.optim.AdamW(params),
    }[optimizer]()
    net.train()
    net(x).sum().backward()
    opt.step()
    net.eval()
    return sum(v.untyped_storage().nbytes() for state in opt.state.values() for v in state.values() if torch.is_tensor(v))
