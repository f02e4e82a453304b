"""Pass manager: textual pipelines, option checking, hooks, verification and PassError."""
import io

import pytest

from mcuforge.errors import PassError, UsageError
from mcuforge.ir.graph import Graph
from mcuforge.ir.types import TensorType
from mcuforge.passes.base import Pass
from mcuforge.passes.manager import Instrumentation, PassManager, PrintIR, format_pipeline, parse_pipeline


def graph():
    g = Graph("g")
    x = g.add_input("x", TensorType((1, 4)))
    g.outputs = [g.op("relu", [g.op("relu", [x])])]
    return g


def drop_double_relu(graph, ctx):
    """Replace relu(relu(x)) by relu(x)."""
    changed = False
    for n in graph.nodes:
        p = n.inputs[0].producer
        if n.op == "relu" and p is not None and p.op == "relu":
            graph.replace_all_uses(n.output, p.output)
            graph.erase(n)
            ctx.stat("removed")
            changed = True
    return changed


def corrupt(graph, ctx, shape=(1, 5)):
    """Break the IR on purpose: give a result a wrong shape."""
    graph.nodes[0].output.type = TensorType(tuple(shape))
    return True


def crash(graph, ctx):
    """Raise an ordinary Python exception."""
    raise RuntimeError("boom")


REG = {p.name: p for p in [Pass("drop-double-relu", drop_double_relu), Pass("corrupt", corrupt), Pass("crash", crash)]}


def test_parse_and_format_pipeline():
    spec = "canonicalize,quantize{scheme=int8,observer=mse,ratio=0.5,keep=[1,2],debug=true},fuse"
    pl = parse_pipeline(spec)
    assert pl == [("canonicalize", {}), ("quantize", {"scheme": "int8", "observer": "mse", "ratio": 0.5,
                                                      "keep": [1, 2], "debug": True}), ("fuse", {})]
    assert parse_pipeline(format_pipeline(pl)) == pl


def test_unknown_pass_lists_known_ones():
    with pytest.raises(UsageError, match="unknown pass.*nope") as e:
        PassManager("drop-double-relu,nope", registry=REG)
    assert "drop-double-relu" in e.value.hint


def test_unknown_option_is_rejected():
    with pytest.raises(UsageError, match="no option"):
        PassManager("corrupt{size=3}", registry=REG)


def test_run_records_stats_and_hooks():
    seen = []

    class Hook(Instrumentation):
        def before(self, name, graph):
            seen.append(("before", name, len(graph)))

        def after(self, name, graph, changed, seconds):
            seen.append(("after", name, len(graph), changed))

    g = graph()
    pm = PassManager("drop-double-relu,drop-double-relu", registry=REG, instrumentations=[Hook()])
    ctx = pm.run(g)
    assert g.count("relu") == 1
    assert ctx.stats["drop-double-relu.removed"] == 1
    assert seen == [("before", "drop-double-relu", 2), ("after", "drop-double-relu", 1, True),
                    ("before", "drop-double-relu", 1), ("after", "drop-double-relu", 1, False)]
    assert [r.changed for r in pm.records] == [True, False]


def test_print_ir_after_changes_only():
    out = io.StringIO()
    PassManager("drop-double-relu,drop-double-relu", registry=REG,
                instrumentations=[PrintIR(only_changed=True, stream=out)]).run(graph())
    assert out.getvalue().count("IR after drop-double-relu") == 1
    assert "relu(%x)" in out.getvalue()


def test_debug_verifies_after_each_pass_and_names_the_pass():
    with pytest.raises(PassError) as e:
        PassManager("drop-double-relu,corrupt,drop-double-relu", registry=REG, debug=True).run(graph())
    assert e.value.pass_name == "corrupt" and e.value.previous == ["drop-double-relu"]
    assert "shape rule" in str(e.value)


def test_without_debug_the_end_of_the_pipeline_is_still_verified():
    with pytest.raises(PassError, match="corrupt"):
        PassManager("corrupt", registry=REG).run(graph())


def test_exceptions_become_pass_errors():
    with pytest.raises(PassError, match="pass 'crash' failed.*boom") as e:
        PassManager("drop-double-relu,crash", registry=REG).run(graph())
    assert e.value.previous == ["drop-double-relu"]


def test_verify_env_variable_turns_on_debug(monkeypatch):
    monkeypatch.setenv("MCUFORGE_VERIFY", "1")
    assert PassManager("corrupt", registry=REG).debug


def test_pass_declaration():
    p = REG["corrupt"]
    assert p.options == {"shape": (1, 5)} and p.summary.startswith("Break the IR")
