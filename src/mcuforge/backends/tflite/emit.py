"""IR -> TFLite flatbuffer: `to_tflite` lowers every node (lower.py) into the schema's objects
(schema.py), packs the `ModelT` into a flatbuffer (buffers deduplicated and 16-byte aligned, our
version and a description in the metadata, the memory plan as TFLite Micro's offline plan:
plan.py) and checks it by loading it into LiteRT's interpreter (the flatbuffer verifier, then
every kernel's Prepare).

Two layers, like the ONNX backend: IR to schema objects, objects to bytes.
"""
from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ...analysis.memory import state_commits
from ...errors import Error, UnsupportedItem, UnsupportedOpError
from ...ir import quant
from ...ir.graph import Graph, Node
from ...version import __version__
from ..base import plan_for, write_atomic
from .legalize import channel_last, explicit_pads
from .lower import lower
from .plan import offline_plan_offsets, temp_layout
from .schema import OFFLINE_PLAN, OFFLINE_PLAN_VERSION, OP, Emitter, Unsupported


class AlignedBuilder(flatbuffers.Builder):
    """A Builder writing byte vectors (buffer data) 16-byte aligned, as the schema's force_align
    asks and TFLite Micro expects (it reads weights and the offline plan in place)."""

    def CreateNumpyVector(self, x):
        if x.dtype != np.uint8:
            return super().CreateNumpyVector(x)
        self.StartVector(1, x.size, 16)
        self.head -= x.size
        self.Bytes[self.head:self.head + x.size] = x.tobytes()
        return self.EndVector()


def to_tflite(graph: Graph, plan=None, offline_plan: bool | None = None) -> bytes:
    """Lower `graph` to a checked .tflite flatbuffer.

    With `plan` (a MemoryPlan), the file carries an offline memory plan that TFLite Micro follows
    (`offline_plan=False`: it does not; `offline_plan=True` without a plan: one is made). The
    offsets are `plan`'s when it was made for the graph as TFLite runs it (the same nodes after
    `explicit_pads`, planned with `scratch_bytes`); otherwise the memory-plan pass plans that graph, in
    the same order and with the same alignment.
    """
    graph = explicit_pads(channel_last(graph))
    e, missing = Emitter(), []
    e.outputs = {id(v) for v in graph.outputs}
    handles, init = _read_states(e, graph)
    commit = state_commits(graph, graph.nodes)
    for i, n in enumerate(graph.nodes):
        try:
            _kernel_accepts(n)
            lower(e, n)
        except Unsupported as why:
            missing.append(UnsupportedItem(f"{n.op}: {why}", n.name))
        for s in graph.states:  # as the memory plan commits them: its offsets hold the write until then
            if commit[s.read.name] == i and s.write is not s.read:
                e.op(OP.ASSIGN_VARIABLE, [handles[s.read.name], e.tensor(s.write)], [])
    if missing:
        raise UnsupportedOpError(missing, "rewrite these parts of the model, or use the c backend",
                                 "the TFLite backend cannot emit:")
    sub = fb.SubGraphT(tensors=e.tensors, operators=e.operators, name=graph.name,
                       inputs=[e.tensor(v) for v in graph.inputs], outputs=[e.tensor(v) for v in graph.outputs])
    metadata = [fb.MetadataT(name="mcuforge_version", buffer=e.buffer(np.frombuffer(__version__.encode(), np.uint8)))]
    if offline_plan or (offline_plan is None and plan is not None):
        if not _plans(plan, graph, e):
            plan = plan_for(graph, lambda n: temp_layout(e, n.name)[2], plan.alignment if plan else 16)
        # the layout TFLite Micro reads: version, subgraph index, tensor count, one offset per tensor
        # of every subgraph (the initialisation's: -1, left to TFLite Micro)
        later = [-1] * sum(len(s.tensors) for s in init)
        words = np.array([OFFLINE_PLAN_VERSION, 0, len(e.tensors) + len(later), *offline_plan_offsets(e, graph, plan),
                          *later], np.int32)
        e.buffers.append(fb.BufferT(data=words.view(np.uint8)))  # not shared: TFLite Micro reads it alone
        metadata.append(fb.MetadataT(name=OFFLINE_PLAN, buffer=len(e.buffers) - 1))
    model = fb.ModelT(version=3, operatorCodes=e.opcodes, subgraphs=[sub, *init], buffers=e.buffers, metadata=metadata,
                      description=f"graph {graph.name} compiled by mcuforge {__version__}")
    builder = AlignedBuilder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    data = bytes(builder.Output())
    _check(data, graph)
    return data


_FLOAT_OP = {q: f for f, q in quant.INTEGER_OP.items()}


def _read_states(e: Emitter, graph: Graph) -> tuple[dict[str, int], list[fb.SubGraphT]]:
    """The states as resource variables, as TensorFlow's converter writes them: a CALL_ONCE of an
    initialisation subgraph assigning each its initial value, then per state a VAR_HANDLE and a
    READ_VARIABLE into the state's tensor. Returns the handle tensor per state, and that subgraph."""
    if not graph.states:
        return {}, []
    init = fb.SubGraphT(name=f"{graph.name}_init", tensors=[], operators=[], inputs=[], outputs=[])
    e.op(OP.CALL_ONCE, [], [], fb.CallOnceOptionsT(initSubgraphIndex=1))
    handles = {}
    for s in graph.states:
        name, k = s.read.name, len(init.tensors)
        handles[name] = e.op(OP.VAR_HANDLE, [], [e.resource(name)], fb.VarHandleOptionsT(sharedName=name))
        e.op(OP.READ_VARIABLE, [handles[name]], [e.tensor(s.read)])
        init.tensors += [e.tensors[handles[name]], e.tensor_t(f"{name}/init", s.read.shape, s.read.dtype,
                                                              s.read.type.quant, s.init)]
        init.operators += [e.operator(OP.VAR_HANDLE, [], [k], fb.VarHandleOptionsT(sharedName=name)),
                           e.operator(OP.ASSIGN_VARIABLE, [k, k + 1], [])]
    return handles, [init]


def _kernel_accepts(n: Node):
    """Refuse integer node `n` when TFLite's kernel would reject the file's scales, or abort on them
    (LiteRT on an ADD whose multipliers leave (0, 1), TFLite Micro on a SOFTMAX input scale below
    2^-26): both compute the kernel parameters from the scales, as `quant.params` does, which
    refuses what they cannot represent; and SOFTMAX, LOGISTIC and TANH only write their fixed
    output scale. (LEAKY_RELU's alpha is folded into multipliers: its lowering checks them.)"""
    y = n.outputs[0]
    if n.op not in quant.PARAMS or n.op == "qleaky_relu" or any(v.type.quant is None for v in (*n.inputs[:2], y)):
        return
    try:
        quant.params(n.op, [v.type for v in n.inputs], y.type, n.attrs)
    except Error as why:
        raise Unsupported(why.message) from None
    fixed = quant.FIXED_OUTPUT.get(y.dtype.value, {}).get(_FLOAT_OP.get(n.op))
    if fixed is not None and (y.type.quant.scale[0], y.type.quant.zero_point[0]) != fixed:
        raise Unsupported(f"output scale {y.type.quant.scale[0]:.6g} and zero point {y.type.quant.zero_point[0]}, "
                          f"but TFLite's kernel writes only {fixed[0]:.6g} and {fixed[1]}")


def _plans(plan, graph: Graph, e: Emitter) -> bool:
    """Whether `plan` places every activation of `graph` as emitted into `e`: the same nodes in
    the same order, a large enough scratch buffer wherever a lowering made temporaries, and no
    input overlapping its node's output (our C kernels' order allows that; TFLite Micro's need
    their inputs whole)."""
    return plan is not None and not plan.overlaps and plan.schedule == [n.name for n in graph.nodes] and all(
        plan.sizes.get(f"{n.name}.scratch", 0) >= temp_layout(e, n.name, plan.alignment)[2] for n in graph.nodes)


def _check(data: bytes, graph: Graph):
    """Load `data` into LiteRT's interpreter: its flatbuffer verifier and every kernel's Prepare."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    try:
        no_delegates = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        Interpreter(model_content=data, experimental_op_resolver_type=no_delegates).allocate_tensors()
    except (RuntimeError, ValueError) as err:
        raise Error(f"LiteRT rejects the TFLite file emitted for graph {graph.name}: {err}",
                    "this is a bug in mcuforge's TFLite backend; please report it with the model") from None


def save_tflite(graph: Graph, path, plan=None, offline_plan: bool | None = None) -> str:
    """Write `to_tflite(graph, plan)` to `path` atomically (nothing is left behind on failure)."""
    data = to_tflite(graph, plan, offline_plan)
    return write_atomic(path, data)
