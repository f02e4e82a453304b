"""to_torch: IR graphs back to torch modules, checked against the reference interpreter, op by op and
on every zoo model, traced again by mcuforge.trace, and trained."""
import math

import numpy as np
import pytest
import torch

import mcuforge
from mcuforge import zoo
from mcuforge.errors import UsageError
from mcuforge.frontends.to_torch import IMPLS
from mcuforge.ir import ops
from mcuforge.ir.graph import Graph
from mcuforge.ir.interpreter import run
from mcuforge.ir.types import TensorType
from mcuforge.passes.manager import PassManager
from mcuforge.passes.pipelines import resolve

rng = np.random.default_rng(0)
FLOAT_OPS = {n for n, d in ops.OPS.items() if not d.tags & {"integer", "quant"}}


def close(actual, expected, rtol=1e-5):
    scale = max(float(np.nanmax(np.abs(expected), initial=0)), 1.0)  # log and sqrt of negatives: NaN in both
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def one_op(op, shapes, attrs=None, consts=()):
    """A graph of one `op` node on inputs of `shapes` and the constant arrays `consts`."""
    g = Graph(op)
    operands = [g.add_input(f"x{i}", TensorType(s)) for i, s in enumerate(shapes)]
    operands += [g.const(np.asarray(c, np.float32), f"c{i}") for i, c in enumerate(consts)]
    out = g.op(op, operands, attrs)
    g.outputs = list(out) if isinstance(out, tuple) else [out]
    return g


def w(*shape):
    return rng.standard_normal(shape).astype(np.float32)


CONV = dict(stride=[1, 1], pads=[1, 1, 1, 1], dilation=[1, 1])
POOL = dict(kernel=[3, 3], stride=[2, 2], pads=[1, 1, 1, 1])
CASES = {
    "conv2d-groups-asym": ("conv2d", [(1, 4, 7, 6)], dict(stride=[2, 1], pads=[1, 0, 2, 1], dilation=[1, 2], groups=2,
                                                          act="relu"), [w(6, 2, 3, 3), w(6)]),
    "conv2d-nhwc": ("conv2d", [(1, 6, 5, 4)], dict(CONV, layout="NHWC", act="relu6"), [w(6, 3, 3, 4)]),
    "conv1d": ("conv1d", [(2, 3, 9)], dict(stride=[2], pads=[2, 0], dilation=[1]), [w(4, 3, 3), w(4)]),
    "conv1d-nwc": ("conv1d", [(2, 9, 3)], dict(stride=[1], pads=[1, 1], dilation=[2], layout="NWC"), [w(4, 3, 3)]),
    "conv_transpose2d": ("conv_transpose2d", [(1, 4, 3, 3)], dict(stride=[2, 2], pads=[1, 1, 1, 1], dilation=[1, 1],
                                                                output_padding=[1, 1]), [w(4, 3, 3, 3), w(3)]),
    "conv_transpose2d-nhwc-asym": ("conv_transpose2d", [(1, 3, 3, 4)], dict(
        stride=[2, 2], pads=[0, 1, 1, 0], dilation=[1, 1], groups=2, layout="NHWC", act="relu"), [w(3, 2, 2, 4)]),
    "linear": ("linear", [(2, 3, 5)], dict(act="relu"), [w(4, 5), w(4)]),
    "matmul": ("matmul", [(2, 3, 4), (4, 5)], {}, []),
    "batch_norm": ("batch_norm", [(2, 3, 4, 4)], dict(eps=1e-3), [w(3), w(3), w(3), np.abs(w(3)) + 0.5]),
    "batch_norm-last": ("batch_norm", [(2, 5, 3)], dict(axis=-1), [w(3), w(3), w(3), np.abs(w(3)) + 0.5]),
    "layer_norm": ("layer_norm", [(2, 3, 4)], {}, [w(4), w(4)]),
    "layer_norm-2d": ("layer_norm", [(2, 3, 4)], dict(axis=-2), []),
    **{op: (op, [(2, 3, 4, 4)], {}, []) for op in ("relu", "relu6", "sigmoid", "tanh", "hardswish", "hardsigmoid",
                                                    "silu", "identity", "dropout")},
    **{op: (op, [(2, 3, 4)], {}, []) for op in ("softplus", "exp", "log", "sqrt", "abs", "sign", "erf")},
    "elu": ("elu", [(2, 3, 4)], dict(alpha=0.5), []),
    **{op: (op, [(2, 3, 4)], {}, [np.abs(w(3, 4)) + 0.5]) for op in ("maximum", "minimum", "pow")},
    **{f"reduce-{m}": ("reduce", [(2, 3, 4)], dict(axes=[0, 2], keepdims=True, mode=m), []) for m in ("sum", "max", "min")},
    "tile": ("tile", [(2, 1, 3)], dict(repeats=[1, 2, 2]), []),
    "leaky_relu": ("leaky_relu", [(2, 3, 4)], dict(alpha=0.2), []),
    "prelu": ("prelu", [(2, 3, 4)], {}, [w(3, 1)]),
    "prelu-last-axis": ("prelu", [(2, 3, 4)], {}, [w(4)]),
    "clamp": ("clamp", [(2, 3, 4)], dict(min=-0.5, max=0.7), []),
    "clamp-inf": ("clamp", [(2, 3, 4)], dict(min=-math.inf, max=1.0), []),
    "gelu": ("gelu", [(2, 3, 4)], {}, []),
    "gelu-tanh": ("gelu", [(2, 3, 4)], dict(approximate="tanh"), []),
    "softmax": ("softmax", [(2, 3, 4)], dict(axis=1), []),
    "log_softmax": ("log_softmax", [(2, 3, 4)], {}, []),
    "add": ("add", [(2, 3, 4, 4)], dict(act="relu"), [w(3, 1, 1)]),
    "sub": ("sub", [(2, 3, 4, 4), (2, 3, 4, 4)], {}, []),
    "mul": ("mul", [(2, 3, 4, 4)], dict(act="relu6"), [w(4)]),
    "div": ("div", [(2, 3, 4)], {}, [np.abs(w(3, 4)) + 0.5]),
    "max_pool2d": ("max_pool2d", [(1, 3, 8, 7)], dict(POOL, ceil_mode=True), []),
    "max_pool2d-nhwc-asym": ("max_pool2d", [(1, 7, 8, 3)], dict(POOL, pads=[0, 1, 2, 1], ceil_mode=True,
                                                                  layout="NHWC"), []),
    "max_pool1d": ("max_pool1d", [(2, 3, 9)], dict(kernel=[3], stride=[2], pads=[1, 1], dilation=[2]), []),
    "avg_pool2d-asym-excl": ("avg_pool2d", [(1, 3, 8, 7)], dict(POOL, pads=[0, 1, 1, 0], ceil_mode=True,
                                                                  count_include_pad=False), []),
    "avg_pool2d-nhwc": ("avg_pool2d", [(1, 8, 7, 3)], dict(POOL, layout="NHWC", count_include_pad=False), []),
    "avg_pool1d-wide-pads": ("avg_pool1d", [(2, 3, 9)], dict(kernel=[2], stride=[2], pads=[2, 2]), []),
    "adaptive_avg_pool": ("adaptive_avg_pool", [(1, 3, 7, 5)], dict(output_size=[2, 3]), []),
    "adaptive_avg_pool-nwc": ("adaptive_avg_pool", [(1, 7, 3)], dict(output_size=[3], layout="NWC"), []),
    "mean": ("mean", [(2, 3, 4, 4)], dict(axes=[2, 3], keepdims=True), []),
    "mean-drop": ("mean", [(2, 3, 4)], dict(axes=[-1]), []),
    "reshape": ("reshape", [(2, 3, 4)], dict(shape=[2, 12]), []),
    "reshape-batch": ("reshape", [(2, 3, 4)], dict(shape=[6, 4]), []),
    "transpose": ("transpose", [(2, 3, 4)], dict(perm=[2, 0, 1]), []),
    "concat": ("concat", [(2, 3, 4), (2, 1, 4)], dict(axis=1), []),
    "split": ("split", [(2, 3, 4)], dict(axis=1, sizes=[1, 2]), []),
    "slice": ("slice", [(2, 5, 6)], dict(axes=[1, 2], starts=[1, 0], ends=[4, 100], steps=[1, 2]), []),
    "pad": ("pad", [(2, 3, 4)], dict(pads=[0, 1, -1, 0, 2, 1], value=0.5), []),
    "resize": ("resize", [(1, 2, 3, 4)], dict(size=[6, 7]), []),
    "resize-bilinear-nhwc": ("resize", [(1, 3, 4, 2)], dict(size=[5, 8], mode="bilinear", layout="NHWC"), []),
    "resize-bilinear-corners": ("resize", [(1, 2, 3, 4)], dict(size=[5, 8], mode="bilinear", align_corners=True), []),
    "resize-linear-1d": ("resize", [(1, 2, 5)], dict(size=[9], mode="bilinear", layout="NCW"), []),
}


def test_every_float_op_has_a_builder_and_a_case():
    assert set(IMPLS) == FLOAT_OPS
    assert {case[0] for case in CASES.values()} == FLOAT_OPS


@pytest.mark.parametrize("case", CASES)
def test_op_round_trip(case):
    op, shapes, attrs, consts = CASES[case]
    g = one_op(op, shapes, attrs, consts)
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    expected = run(g, *xs)
    module = mcuforge.to_torch(g)
    with torch.no_grad():
        got = module(*map(torch.from_numpy, xs))
    for a, b in zip(got if isinstance(got, tuple) else (got,), expected, strict=True):
        close(a.numpy(), b)
    back = mcuforge.trace(module, tuple(map(torch.from_numpy, xs)))  # and through the fx frontend again
    for a, b in zip(run(back, *xs), expected, strict=True):
        close(a, b)


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_round_trip(float_zoo, name):
    """The module computes the graph's function: in float64 it is within float32 rounding (1e-5 of
    the output's scale) of both the interpreter and itself in float32. (The two float32 results
    differ by the sum of both roundings, up to 1.2e-5 on the 28 layers of MobileNetV1.)"""
    g, (x,) = float_zoo(name)
    x = torch.from_numpy(x)
    module = mcuforge.to_torch(g)
    with torch.no_grad():
        y32 = module(x).numpy()
        exact = module.double()(x.double()).numpy()
    close(run(g, x.numpy())[0], exact)
    close(y32, exact)
    consts = sum(v.type.numel for v in g.constants())
    assert sum(t.numel() for t in [*module.parameters(), *module.buffers()]) == consts
    if name in ("shufflenet_v2", "unet_tiny", "mobilenet_v2"):  # reshapes and shuffles, transposed convs, resize
        back = mcuforge.trace(module.float(), (x,))
        PassManager(resolve("float")).run(back)
        assert back.count() == g.count()
        close(run(back, x.numpy())[0], run(g, x.numpy())[0])


def test_parameters_buffers_and_training():
    model, (x,) = zoo.get("tiny_cnn")
    g = mcuforge.trace(model, (x,))
    PassManager("canonicalize").run(g)  # batch norms stay
    module = mcuforge.to_torch(g)
    assert not module.training
    params, buffers = dict(module.named_parameters()), dict(module.named_buffers())
    assert {module.sources[k][0] for k in params} == {
        "features.0.0.weight", "features.0.1.weight", "features.0.1.bias", "features.2.0.weight",
        "features.2.1.weight", "features.2.1.bias", "head.weight", "head.bias"}
    assert {module.sources[k][0] for k in buffers} == {
        "features.0.1.running_mean", "features.0.1.running_var", "features.2.1.running_mean", "features.2.1.running_var"}
    before = {k: t.detach().clone() for k, t in [*params.items(), *buffers.items()]}
    module.train()
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    data, target = torch.randn(8, *x.shape[1:]), torch.randint(0, 10, (8,))
    loss = torch.nn.functional.cross_entropy(module(data), target)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params.values())
    opt.step()
    assert all(not torch.equal(before[k], t) for k, t in [*params.items(), *buffers.items()])  # BN stats too
    with torch.no_grad():
        assert torch.nn.functional.cross_entropy(module(data), target) < loss


def test_any_batch_size_and_channel_last_weights(float_zoo):
    g, (x,) = float_zoo("digits_cnn")  # a flatten before the linear layer
    model, _ = zoo.get("digits_cnn")
    batch = torch.randn(5, *x.shape[1:])
    with torch.no_grad():
        close(mcuforge.to_torch(g)(batch).numpy(), model(batch).numpy(), rtol=1e-4)
    nhwc = one_op("conv2d", [(1, 5, 5, 2)], dict(CONV, layout="NHWC"), [w(3, 3, 3, 2)])
    module = mcuforge.to_torch(nhwc)
    (key,) = (k for k, _ in module.named_parameters())
    assert module.sources[key] == ("c0", (0, 3, 1, 2)) and tuple(getattr(module, key).shape) == (3, 2, 3, 3)


def test_non_float_ops_are_refused_all_at_once():
    g = Graph()
    q = g.op("quantize", [g.add_input("x", TensorType((1, 4)))], dict(scale=[0.1], zero_point=[0]))
    g.outputs = [g.op("dequantize", [q], dict(scale=[0.1], zero_point=[0]))]
    with pytest.raises(UsageError, match=r"%quantize \(quantize\), %dequantize \(dequantize\)"):
        mcuforge.to_torch(g)


def test_states_become_an_input_and_an_output():
    g = Graph("sum")
    x = g.add_input("x", TensorType((1, 4)))
    s = g.add_state("s", TensorType((1, 4)))
    y = g.op("add", [x, s])
    g.set_state_write(s, y)
    g.outputs = [g.op("relu", [y])]
    out, new = mcuforge.to_torch(g)(torch.ones(1, 4), torch.full((1, 4), -3.0))
    assert torch.equal(out, torch.zeros(1, 4)) and torch.equal(new, torch.full((1, 4), -2.0))
