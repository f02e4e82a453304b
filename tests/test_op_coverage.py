"""Every op of the op table has its entry in each per-op table (docs/adding-an-op.md), and no
table keeps an entry for an op that is not in the op table. A forgotten entry fails here with the
op's name and the file to add it to, before any model needs it."""
import pytest

from mcuforge.backends.c import ops as c_ops
from mcuforge.backends.c import packed
from mcuforge.backends.onnx import emit as onnx_emit
from mcuforge.backends.onnx import integer as onnx_integer
from mcuforge.backends.tflite import lower as tflite_lower
from mcuforge.frontends import to_torch
from mcuforge.ir import interpreter, quant
from mcuforge.ir.ops import OPS, with_tag

INTEGER, QUANT = with_tag("integer"), with_tag("quant")
FLOAT = set(OPS) - INTEGER - QUANT

# (what the table is for, the ops it must cover, the table, where its entries live)
TABLES = [
    ("meaning", set(OPS), interpreter.IMPLS, "src/mcuforge/ir/interpreter.py (@impl)"),
    ("integer kernel parameters", INTEGER, quant.PARAMS, "src/mcuforge/ir/quant.py (PARAMS)"),
    ("torch module", FLOAT, to_torch.IMPLS, "src/mcuforge/frontends/to_torch.py"),
    ("float or QDQ ONNX", FLOAT | QUANT, onnx_emit.LOWERINGS, "src/mcuforge/backends/onnx/emit.py (@lowers)"),
    ("exact integer ONNX", set(OPS), onnx_integer.INTEGER_LOWERINGS, "src/mcuforge/backends/onnx/integer.py"),
    ("TFLite", set(OPS), tflite_lower.LOWERINGS, "src/mcuforge/backends/tflite/lower.py (@lowers)"),
    ("C", set(OPS), c_ops.LOWERINGS, "src/mcuforge/backends/c/ops.py (@lowers)"),
]


@pytest.mark.parametrize("what, ops, table, where", TABLES, ids=[t[0] for t in TABLES])
def test_every_op_has_its_entry(what, ops, table, where):
    missing = sorted(ops - set(table))
    assert not missing, f"no {what} for {', '.join(missing)}: add it to {where}"


@pytest.mark.parametrize("what, ops, table, where", TABLES, ids=[t[0] for t in TABLES])
def test_no_entry_outlives_its_op(what, ops, table, where):
    stale = sorted(set(table) - set(OPS))
    assert not stale, f"{where} has entries for ops the op table no longer has: {', '.join(stale)}"


def test_the_special_c_lowerings_refine_an_op_the_c_backend_has():
    """int16 and compressed-weight lowerings are variants of an op's C lowering, never the only one."""
    assert set(c_ops.INT16_LOWERINGS) <= set(c_ops.LOWERINGS) and set(packed.LOWERINGS) <= set(c_ops.LOWERINGS)
    assert set(c_ops.INT16_LOWERINGS) <= INTEGER | {"relu", "relu6", "clamp"}


def test_folded_attributes_belong_to_integer_ops():
    assert set(quant.FOLDED) <= set(quant.PARAMS)


def test_every_integer_op_is_some_float_ops_integer_form():
    """quant.INTEGER_OP maps float ops to integer ops of the op table; each integer op but
    requantize (which rescales between integer types) is one float op's form."""
    assert set(quant.INTEGER_OP) <= FLOAT and set(quant.INTEGER_OP.values()) <= INTEGER
    assert INTEGER - set(quant.INTEGER_OP.values()) == {"requantize"}
    assert quant.INT8_ONLY <= set(quant.INTEGER_OP)
