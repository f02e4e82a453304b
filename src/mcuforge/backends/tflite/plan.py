"""The memory plan in the file: TFLite Micro's "OfflineMemoryAllocation" metadata gives every
activation an arena offset, the temporaries the lowerings add included. `scratch_bytes` is the
backend's scratch for the memory-plan pass (the temporaries plus TFLite Micro's own kernel
scratch), so a plan made with it places everything the file needs.
"""
from __future__ import annotations

import math

from ai_edge_litert import schema_py_generated as fb

from ...ir.graph import Graph, Node
from .lower import lower
from .schema import OP, Emitter, Unsupported


def _tflm_scratch(e: Emitter, o: fb.OperatorT) -> list[int]:
    """Bytes of the scratch buffers TFLite Micro's kernel for operator `o` asks for in the arena
    (the Prepare of transpose_conv.cc and reduce_common.cc): the plan leaves room for them."""
    code = e.opcodes[o.opcodeIndex].builtinCode
    if code not in (OP.TRANSPOSE_CONV, OP.MEAN):
        return []
    out, x = e.tensors[o.outputs[0]], e.tensors[o.inputs[0]]
    integer = {fb.TensorType.INT8: 4, fb.TensorType.INT16: 8}
    if code == OP.TRANSPOSE_CONV and e.tensors[o.inputs[2]].type in integer:
        return [math.prod(out.shape) * integer[e.tensors[o.inputs[2]].type]]  # int32/int64 accumulators
    if code == OP.MEAN:
        return [4 * len(x.shape), 4 * math.prod(e.tensors[o.inputs[1]].shape)] + \
            ([4 * math.prod(out.shape)] if x.type in integer else [])
    return []


def temp_layout(e: Emitter, node: str, alignment: int = 16) -> tuple[dict[int, int], dict[int, int], int]:
    """Where the temporaries of IR node `node` go in the arena: a reshape of (or into) an IR value
    shares its bytes (TFLite Micro's RESHAPE copies nothing then); the others are packed, aligned,
    into the node's scratch buffer, followed by room for TFLite Micro's own kernel scratch.
    -> ({temp: IR value's tensor}, {temp: offset in the scratch buffer}, scratch bytes)."""
    shared, packed, size = {}, {}, 0
    for t in e.temps.get(node, []):
        other = next((b if a == t else a for a, b in e.views if t in (a, b) and (b if a == t else a) in e.values), None)
        if other is not None:
            shared[t] = other
        else:
            packed[t], size = size, size + -(-e.nbytes[t] // alignment) * alignment
    kernel = [b for o in e.node_ops.get(node, []) for b in _tflm_scratch(e, o)]
    return shared, packed, size + sum(-(-b // alignment) * alignment for b in kernel)


def scratch_bytes(node: Node) -> int:
    """Arena bytes the TFLite form of `node` needs besides the IR's values: the temporaries its
    lowering adds and TFLite Micro's kernel scratch. As the memory planner's `scratch` function
    (the backend's `scratch`, for the memory-plan pass), it makes plans `to_tflite` uses as they are."""
    e = Emitter()
    try:
        lower(e, node)
    except Unsupported:
        return 0
    return temp_layout(e, node.name)[2]


def offline_plan_offsets(e: Emitter, graph: Graph, plan) -> list[int]:
    """One int32 per TFLite tensor: the planned arena offset of each IR value and of each
    temporary (in its node's scratch buffer, or on the IR value it is a reshape of); -1 (TFLite
    Micro's to plan) for constants, which stay in the flatbuffer."""
    offsets = [-1] * len(e.tensors)
    for v in graph.values():
        if not v.is_const and id(v) in e._index and v.name in plan.offsets:
            offsets[e._index[id(v)]] = plan.offsets[v.name]
    for n in graph.nodes:
        shared, packed, _ = temp_layout(e, n.name, plan.alignment)
        for t, v in shared.items():
            offsets[t] = offsets[v]
        for t, off in packed.items():
            offsets[t] = plan.offsets[f"{n.name}.scratch"] + off
    return offsets
