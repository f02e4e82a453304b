"""The verifier names the node and the rule for each kind of broken IR."""
import numpy as np
import pytest

from mcuforge.errors import ShapeError, VerifyError
from mcuforge.ir.graph import Graph
from mcuforge.ir.types import TensorType
from mcuforge.ir.verify import verify


def small():
    g = Graph()
    x = g.add_input("x", TensorType((2, 3)))
    w = g.const(np.zeros((4, 3)), "w")
    y = g.op("linear", [x, w], name="fc")
    g.outputs = [g.op("relu", [y], name="act")]
    return g


def test_valid_graph_passes():
    verify(small())


def test_wrong_result_shape_names_node():
    g = small()
    fc = g.find("fc")
    fc.output.type = TensorType((2, 5))
    with pytest.raises(ShapeError, match="node fc.*shape rule gives"):
        verify(g)


def test_use_before_definition():
    g = small()
    g._nodes.reverse()
    with pytest.raises(VerifyError, match="not defined before its use"):
        verify(g)


def test_stale_use_list():
    g = small()
    g.find("act").inputs[0] = g.inputs[0]
    with pytest.raises(VerifyError, match="use list"):
        verify(g)


def test_unknown_fused_activation():
    g = small()
    g.find("fc").attrs["act"] = "swish"
    with pytest.raises(VerifyError, match="unknown fused activation"):
        verify(g)


def test_bad_arity_and_undefined_output():
    g = small()
    g.outputs.append(g.const(np.zeros(1), "orphan"))
    verify(g)  # a constant output is defined
    act = g.find("act")
    g.set_inputs(act, [act.inputs[0], act.inputs[0]])
    with pytest.raises(VerifyError, match="takes 1..1 operands"):
        verify(g)


def test_constant_data_must_match_type():
    g = small()
    w = g.constants()[0]
    w.data = np.zeros((4, 3), np.float64)
    with pytest.raises(VerifyError, match="constant %w"):
        verify(g)


def test_enumerated_attributes_are_checked():
    g = Graph()
    x = g.add_input("x", TensorType((1, 2, 4, 4)))
    g.outputs = [g.op("resize", [x], dict(size=[8, 8], mode="bicubic"), name="up")]
    with pytest.raises(VerifyError, match="node up: mode='bicubic' is not one of"):
        verify(g)
