"""IR -> C: `emit_c` writes a model as portable C99 sized to its memory plan.

Two layers, as every backend: `CEmitter` turns the graph into records (per node its parameter
structs and kernel calls from `ops.LOWERINGS`, the weight blob, the tensors of the entry point),
then dumb Jinja2 templates render them into files:

- `<prefix>.h`: the API: `<prefix>_invoke(inputs, outputs)` on a static arena of exactly the
  planned size, `<prefix>_invoke_with_arena(arena, size, inputs, outputs)` on the caller's
  memory (size and alignment checked), and per tensor its dtype, shape, bytes, arena offset and
  quantization parameters. A model with states (`Graph.states`, a streaming model's) keeps them in
  `<prefix>_state`, a static buffer of `<PREFIX>_STATE_SIZE` bytes outside the arena that persists
  between calls: the layers read a state there, invoke copies its new value in as soon as no
  layer is left to read the old one (the plan's `state_commits`), and `<prefix>_reset()` (called by the first invoke) puts back the initial values.
- `<prefix>.c`: the weights as one aligned `const` blob (flash), written as string-literal rows:
  compilers read those ~10x faster than numeric initializer lists, which keeps multi-megabyte
  models buildable in seconds; a table in the comment gives each weight's offset. Then the op
  calls in schedule order, every tensor at its constant arena offset from the memory plan.
- `kernels/`: `mcuforge.h` and only the kernel files the model calls (see kernels/mcuforge.h).
- `Makefile`, `main_host.c` (raw input bytes on stdin -> raw output bytes on stdout),
  `main_qemu.c`, `startup_mps2.c`, `mps2.ld` and `mps3.ld` (an ELF for QEMU's MPS2 Cortex-M3/M4/M7
  boards and its MPS3 Cortex-M55 board, with semihosting).
With `profile=True` the project also has layer markers for measuring each layer's instructions
under QEMU: compiled in only with -DMCUFORGE_PROFILE (`make profile`, a separate ELF), so the
host and `make cortex-m` builds are the same code as without them; plus `layers.tsv` (the
layers in marker order: node, op, kind of `layer_kind`) and `qemu_marks.c`, the QEMU plugin
that counts (see bench.qemu_layers). Without it nothing of this is written.
Every global symbol of `<prefix>.c` starts with the prefix (`kws_invoke`, `kws_arena`) and the
kernels (`mcuforge_*`) are the same files in every model, so two models link into one firmware.

The memory plan comes from `plan=` (e.g. ctx.plan) when it belongs to this graph
and covers the kernels' scratch (`ops.scratch_bytes`), else the memory-plan pass makes one. With a
`target`, a model whose arena (+ RUNTIME_RAM) or weights + code exceed its SRAM or flash raises
DoesNotFitError before anything is written. Output is deterministic: same graph, same bytes.
Little-endian targets only (every Cortex-M as configured by vendors, x86, RISC-V).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np

from ...analysis.fit import check_fit
from ...analysis.memory import MemoryPlan
from ...errors import UnsupportedItem, UnsupportedOpError, UsageError
from ...ir.graph import Graph, Node, Value
from ...ir.types import DType
from ...version import __version__
from ..base import plan_for, write_files
from . import ops, packed, tune

KERNELS_DIR = Path(__file__).with_name("kernels")
ALIGNMENT = 16  # arena and weight offsets; what the planner aligns to
ROW = 512  # bytes per string-literal row of the weight blob
RUNTIME_RAM = 1024  # bytes of SRAM besides the arena: stack of invoke and the kernels, libc state
RUNTIME_CODE = 1500  # bytes of flash besides kernels and calls: invoke's copies, memcpy/memset

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
                          lstrip_blocks=True)


@dataclass
class NodeCode:
    """What one IR node becomes: a comment, `static const` parameter structs, kernel calls."""

    comment: str
    structs: list[tuple[str, str, str]] = field(default_factory=list)  # (C type, name, initializer)
    calls: list[str] = field(default_factory=list)
    exit: dict | None = None  # an early exit's test after this node (exits.py)
    special: bool = False  # its own function, its kernel specialized (tune.py)


class Blob:
    """The weight blob: aligned, deduplicated arrays, each with a line in the weights table."""

    def __init__(self):
        self.data = bytearray()
        self.entries: list[tuple[int, int, str]] = []  # (offset, bytes, description)
        self._seen: dict[tuple, int] = {}

    def add(self, array: np.ndarray, what: str) -> int:
        a = np.ascontiguousarray(array)
        a = a.astype(a.dtype.newbyteorder("<"))
        key = (a.dtype.str, a.shape, a.tobytes())
        if key not in self._seen:
            self.data += bytes(-len(self.data) % ALIGNMENT)
            self._seen[key] = len(self.data)
            self.entries.append((len(self.data), a.nbytes, ops.c_text(f"{what}: {a.dtype} {list(a.shape)}")))
            self.data += key[2]
        return self._seen[key]

    def rows(self) -> list[str]:
        """The blob as C string literals of ROW bytes, every byte a \\xNN escape."""
        if not self.data:
            return ['""']
        hexed = np.frombuffer(bytes(self.data).hex().encode(), dtype="S2")
        escaped = np.char.add(b"\\x", hexed).astype("S4")
        return ['"' + escaped[i:i + ROW].tobytes().decode() + '"' for i in range(0, len(escaped), ROW)]


def lowering(n: Node):
    """The C lowering of `n`: by op, then by the type of its first input (int16 kernels,
    `ops.INT16_LOWERINGS`) and its weight format (compressed weights, `packed.LOWERINGS`);
    None when the backend has none."""
    if n.inputs and n.inputs[0].dtype == DType.i16 and n.op in ops.INT16_LOWERINGS:
        return ops.INT16_LOWERINGS[n.op]
    if n.attrs.get("wfmt", "int8") != "int8" and n.op in packed.LOWERINGS:
        return packed.LOWERINGS[n.op]
    return ops.LOWERINGS.get(n.op)


class CEmitter:
    """Lowers the nodes of one graph in schedule order into NodeCode records."""

    def __init__(self, graph: Graph, plan: MemoryPlan):
        self.graph, self.plan, self.blob = graph, plan, Blob()
        self.nodes: list[NodeCode] = []
        self.kernels: set[str] = set()
        self.n_calls = 0

    def lower_all(self):
        order = {n.name: n for n in self.graph.nodes}
        def refused(n: Node) -> str | None:  # what has no C kernel: the op, the element type or no elements
            odd = sorted({v.dtype.value for v in (*n.inputs, *n.outputs) if v.dtype not in ops.CTYPES})
            return n.op if lowering(n) is None else f"{n.op} on {', '.join(odd)} tensors" if odd else \
                f"{n.op} making a tensor without elements" if any(not v.type.numel for v in n.outputs) else None
        missing = [UnsupportedItem(why, n.name, n.meta.get("location")) for n in order.values() if (why := refused(n))]
        missing += [UnsupportedItem(f"graph {kind} of {v.dtype.value}{list(v.shape)}", v.name)  # (the planner skips
                    for kind, values in (("input", self.graph.inputs), ("output", self.graph.outputs))  # empty ones)
                    for v in values if v.dtype not in ops.CTYPES or not v.type.numel]
        if missing:
            raise UnsupportedOpError(missing, "these ops have no C kernel yet", "the C backend cannot emit:")
        for name in self.plan.schedule:
            n = order[name]
            operands = ", ".join(("const " if v.is_const else "%") + v.name for v in n.inputs)
            attrs = ", ".join(f"{k}={v}" for k, v in n.attrs.items() if k in ("act", "layout", "groups", "axis",
                                                                              "perm"))
            results = ", ".join(f"%{v.name}: {v.dtype.value}{list(v.shape)}" for v in n.outputs)
            self.nodes.append(NodeCode(ops.c_text(f"{results} = {n.op}({operands}){' ' + attrs if attrs else ''}")))
            lowering(n)(self, n)

    # ---- the interface of ops.LOWERINGS
    def offset(self, v: Value) -> int:
        return self.plan.offsets[v.name]

    def ptr(self, v: Value, byte_offset: int = 0) -> str:
        """C expression of a pointer to `v`'s data (+ byte_offset): arena or weight blob."""
        ctype = ops.CTYPES[v.dtype]
        if v.name in self.plan.state_offsets:
            return f"STATE({ctype}, {self.plan.state_offsets[v.name] + byte_offset})"
        if v.is_const:
            return f"FLASH({ctype}, {self.blob.add(np.asarray(v.data), v.name) + byte_offset})"
        return f"ARENA({ctype}, {self.offset(v) + byte_offset})"

    def same_bytes(self, a: Value, b: Value, byte_offset: int = 0) -> bool:
        """Whether `a` already lives at `b`'s offset + byte_offset (aliased by the planner)."""
        return all(v.name in self.plan.offsets for v in (a, b)) and self.offset(a) == self.offset(b) + byte_offset

    def const(self, array: np.ndarray, what: str) -> str:
        """A compile-time array in the weight blob -> C pointer expression."""
        a = np.asarray(array)
        return f"FLASH({ops.CTYPES[DType.from_numpy(a.dtype)]}, {self.blob.add(a, what)})"

    def scratch(self, n: Node, ctype: str) -> str:
        if ops.scratch_bytes(n) == 0:
            return "NULL"
        return f"ARENA({ctype}, {self.plan.offsets[f'{n.name}.scratch']})"

    def struct(self, ctype: str, **fields) -> str:
        code = self.nodes[-1]
        name = f"p{len(code.structs)}"
        init = ", ".join(f".{k} = {_c_value(v)}" for k, v in fields.items())
        code.structs.append((ctype, name, "{" + init + "}"))
        return f"&{name}"

    def call(self, kernel: str, *args):
        self.kernels.add(kernel)
        self.n_calls += 1
        self.nodes[-1].calls.append(f"{kernel}({', '.join(str(a) for a in args)});")


LAYER_KINDS = ("depthwise conv", "1x1 conv", "kxk conv", "fully connected", "add", "pool", "other")


def layer_kind(n: Node) -> str:
    """The LAYER_KINDS group `n` is counted in (per-layer benchmark totals): convolutions by kernel
    and grouping, linear and matmul as fully connected, the pools and means as pool."""
    op = n.op.removeprefix("q") if n.op.startswith("q") and n.op[1:] in ops.LOWERINGS else n.op
    if op in ("conv1d", "conv2d"):
        if ops.is_depthwise(n):
            return "depthwise conv"
        ws = n.inputs[1].shape  # spatial axes after (O, I) channels first, between them channels last
        return "1x1 conv" if int(np.prod(ws[2:] if n.attrs["layout"][1] == "C" else ws[1:-1])) == 1 else "kxk conv"
    if op in ("linear", "matmul"):
        return "fully connected"
    if op == "add":
        return "add"
    if op in ("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool", "mean"):
        return "pool"
    return "other"


def tune_key(e: CEmitter, target) -> str:
    """The key of this model's `bench --tune` measurements for `target`'s core and build (tune.py)."""
    code = "\n".join(f"{c.comment}\n{c.structs}\n{c.calls}" for c in e.nodes)
    return tune.cache_key(code, getattr(target, "core", "cortex-m4"), bool(getattr(target, "dsp", False)))


def specialize(e: CEmitter, optimize: str, target, layers=None) -> tuple[str, int]:
    """Marks the layers that `optimize` runs specialized (tune.py), or the candidates among
    `layers` if given, their calls renamed to the kernels' inline copies; returns what the choice
    rests on and the bytes of code it adds."""
    tune.check(optimize)
    order = {n.name: n for n in e.graph.nodes}
    measured, added = tune.load(tune_key(e, target)), 0
    for name, c in zip(e.plan.schedule, e.nodes):
        if not c.calls or any(call.split("(")[0] not in tune.SPECIALIZABLE for call in c.calls):
            continue
        n = order[name]
        v = (measured or {}).get(name) or tune.estimate(n, layer_kind(n))
        if name in layers if layers is not None else tune.pays(v, optimize):
            c.special, c.calls = True, [call.replace("(", "_special(", 1) for call in c.calls]
            added += v.code_bytes
    if layers is not None:
        return "the caller", added
    return "measurements of `mcuforge bench --tune`" if measured else "the cost model", added


def _c_value(v) -> str:
    if isinstance(v, (list, tuple)):
        return "{" + ", ".join(str(int(x)) for x in v) + "}"
    return str(int(v))


# ---------------------------------------------------------------- plan and fit check

def resolve_plan(graph: Graph, plan: MemoryPlan | None) -> MemoryPlan:
    """`plan` if it is this graph's (same schedule, every value and kernel scratch placed), else a
    fresh plan with the C kernels' scratch."""
    names = [n.name for n in graph.nodes]
    if plan is not None and sorted(plan.schedule) == sorted(names):
        needed = {v.name: v.type.nbytes for n in graph.nodes for v in n.outputs} | \
                 {v.name: v.type.nbytes for v in graph.inputs}
        needed |= {f"{n.name}.scratch": ops.scratch_bytes(n) for n in graph.nodes if ops.scratch_bytes(n)}
        if all(plan.sizes.get(k, 0) >= b for k, b in needed.items() if b):
            return plan
    return plan_for(graph, ops.scratch_bytes, ALIGNMENT, ops.overlap_lag)


# ---------------------------------------------------------------- files

def _io(e: CEmitter, v: Value, i: int) -> dict:
    q = v.type.quant
    return dict(index=i, name=ops.c_text(v.name), ctype=ops.CTYPES[v.dtype], dtype=v.dtype.value, shape=list(v.shape),
                bytes=v.type.nbytes, const=v.is_const, offset=None if v.is_const else e.offset(v),
                src=e.ptr(v) if v.is_const else None,
                scale=ops.flt(q.scale[0]) if q is not None and q.axis is None else None,
                zero_point=q.zero_point[0] if q is not None and q.axis is None else None)


def _states(e: CEmitter, graph: Graph) -> list[dict]:
    """Per state: where it lives in the state buffer and how reset sets it (a byte to fill it with,
    or its initial value in the weight blob); the copy of its new value goes after its commit step."""
    records = []
    for s in graph.states:
        if s.write is not s.read and graph.state(s.write) is not None:
            raise UnsupportedOpError([UnsupportedItem("a state written from another state", s.read.name)],
                                     "write it from a copy", "the C backend cannot emit:")
        raw = np.ascontiguousarray(s.init).view(np.uint8).reshape(-1)
        fill = int(raw[0]) if raw.size and np.all(raw == raw[0]) else None
        offset = e.plan.state_offsets[s.read.name]
        records.append(dict(name=ops.c_text(s.read.name), offset=offset, bytes=s.read.type.nbytes, fill=fill,
                            init=None if fill is not None else e.const(s.init, s.read.name),
                            shape=list(s.read.shape), ctype=ops.CTYPES[s.read.dtype]))
        if s.write is not s.read and e.nodes:
            e.nodes[e.plan.state_commits[s.read.name]].calls.append(
                f"memcpy(STATE(uint8_t, {offset}), {e.ptr(s.write)}, {s.read.type.nbytes}); /* the new {records[-1]['name']} */")
    return records


def render_c(graph: Graph, *, prefix: str = "model", target=None, plan: MemoryPlan | None = None,
             exits=None, profile: bool = False, fit_check: bool = True, optimize: str = "balanced",
             specialized=None) -> dict[str, bytes]:
    """File name -> content of the C project for `graph` (see the module docstring); `optimize`
    picks the layers that run specialized (tune.py), `specialized` (node names) overrides it."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise UsageError(f"C prefix '{prefix}' is not a C identifier", "use letters, digits and _, e.g. --prefix kws")
    plan = resolve_plan(graph, plan)
    e = CEmitter(graph, plan)
    e.lower_all()
    basis, special_code = specialize(e, optimize, target, specialized)
    from .exits import add_exit_checks
    exit_records, exit_helpers = add_exit_checks(e, graph, exits or [])
    states = _states(e, graph)
    inputs = [_io(e, v, i) for i, v in enumerate(graph.inputs)]
    outputs = [_io(e, v, i) for i, v in enumerate(graph.outputs)]
    files = sorted({ops.KERNEL_FILES[k] for k in e.kernels})
    if target is not None and fit_check:
        code = RUNTIME_CODE + sum(ops.CODE_BYTES[f] for f in files) + ops.CALL_BYTES * e.n_calls + special_code
        is_float = any(v.dtype == DType.f32 for n in graph.nodes for v in n.outputs)
        check_fit(target, plan, len(e.blob.data), code_bytes=code, runtime_ram=RUNTIME_RAM, is_float=is_float)
    int16 = any(f.endswith("_s16.c") for f in files)  # the int16 kernels use mcuforge_int8.h's arithmetic too
    headers = ["mcuforge.h"] + (["mcuforge_int8.h"] if int16 or any(f.endswith("_s8.c") for f in files) else []) \
        + (["mcuforge_int16.h"] if int16 else [])
    ctx = dict(version=__version__, graph=ops.c_text(graph.name), prefix=prefix,
               PREFIX=prefix.upper(), inputs=inputs, outputs=outputs, plan=plan, nodes=e.nodes,
               weight_rows=e.blob.rows(), row_bytes=ROW, weight_bytes=len(e.blob.data), weights=e.blob.entries,
               kernel_files=files, arena_bytes=max(plan.arena_bytes, 1), exits=exit_records,
               exit_helpers=exit_helpers, profile=profile, states=states, state_bytes=plan.state_bytes,
               optimize=optimize, basis=basis,
               special_files=sorted({tune.SPECIALIZABLE[c.split("(")[0].removesuffix("_special")]
                                     for n in e.nodes if n.special for c in n.calls if "_special(" in c}))
    out = {f"{prefix}.h": "model.h.j2", f"{prefix}.c": "model.c.j2", "Makefile": "Makefile.j2",
           "main_host.c": "main_host.c.j2", "main_qemu.c": "main_qemu.c.j2", "startup_mps2.c": "startup_mps2.c.j2",
           "mps2.ld": "mps2.ld.j2", "mps3.ld": "mps3.ld.j2"}
    if profile:
        out["qemu_marks.c"] = "qemu_marks.c.j2"
    result = {name: _ENV.get_template(t).render(**ctx).encode() for name, t in out.items()}
    if profile:
        order = {n.name: n for n in graph.nodes}
        result["layers.tsv"] = (f"# generated by mcuforge {__version__}: index, node, op and kind of each layer, "
                                "in the order of the markers\n" +
                                "".join(f"{i}\t{name}\t{order[name].op}\t{layer_kind(order[name])}\n"
                                        for i, name in enumerate(plan.schedule))).encode()
    for f in headers + files:
        result[f"kernels/{f}"] = (KERNELS_DIR / f).read_bytes()
    return result


def emit_c(graph: Graph, out_dir, *, prefix: str = "model", target=None, plan: MemoryPlan | None = None,
           exits=None, profile: bool = False, fit_check: bool = True, optimize: str = "balanced",
           specialized=None) -> Path:
    """Write the C project for `graph` into `out_dir` (created); returns the directory. Everything
    is rendered (and the fit checked) before the first file is written."""
    files = render_c(graph, prefix=prefix, target=target, plan=plan, exits=exits, profile=profile, fit_check=fit_check,
                     optimize=optimize, specialized=specialized)
    return write_files(out_dir, files)
