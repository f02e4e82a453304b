"""ONNX -> IR: torch modules exported by the TorchScript exporter at opsets 13 and 17 (oracle: torch),
hand-written ONNX forms exporters produce (oracle: onnxruntime), and the errors for bad files,
dynamic shapes and unsupported ops."""
import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper

from mcuforge.errors import Error, ModelLoadError, UnsupportedOpError, UsageError
from mcuforge.frontends.onnx import load_onnx
from mcuforge.ir import interpreter
from mcuforge.ir.verify import verify

RNG = np.random.default_rng(0)


def rnd(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def export(module, *inputs, opset=17, **kw) -> onnx.ModelProto:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), tuple(inputs), f, opset_version=opset, dynamo=False,
                          input_names=[f"x{i}" for i in range(len(inputs))], **kw)
    return onnx.load_from_string(f.getvalue())


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn0 = nn.BatchNorm2d(3)  # not after a conv, so the exporter keeps BatchNormalization
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding="same", groups=8, bias=False)
        self.up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.fc = nn.Linear(4, 5)
        self.prelu = nn.PReLU(8)
        nn.init.uniform_(self.prelu.weight, -0.5, 1.5)
        for p in self.bn0.parameters():
            nn.init.uniform_(p, 0.5, 1.5)
        self.bn0.running_mean.uniform_(-1, 1)
        self.bn0.running_var.uniform_(0.5, 2)

    def forward(self, x):
        y = F.relu(self.conv(self.bn0(x)))
        y = F.relu6(self.dw(y))
        y = self.prelu(F.max_pool2d(y, 3, 2, 1, ceil_mode=True))
        y = F.hardswish(self.up(y))
        y = F.avg_pool2d(F.leaky_relu(y, 0.1), 2, 1, 1, count_include_pad=False)
        y = F.adaptive_avg_pool2d(y, 1).flatten(1)
        return self.fc(y).softmax(-1)


class Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 6, bias=False)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):  # (batch, tokens, features): linear layers become MatMul + Add
        y = self.drop(F.silu(self.fc1(x)))
        y = self.fc2(torch.tanh(y) * torch.sigmoid(y)).clamp(-1.0, 2.0)
        y = F.hardsigmoid(y) + F.leaky_relu(x, 0.3)
        return (y / 2 - x).log_softmax(1), y.mean(-1, keepdim=True)


class Norms(nn.Module):  # LayerNormalization exists from opset 17, Gelu from 20
    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm([3, 4])

    def forward(self, x):
        return F.gelu(self.ln(x), approximate="tanh"), F.gelu(x)


class Shapes(nn.Module):
    def forward(self, x, z):  # x (1, 4, 6, 6), z (1, 3, 10)
        a, b = x.split([1, 3], dim=1)
        y = torch.cat([b, a * 2], 1)[:, 1:3, ::2]
        y = F.pad(y, (1, 0, 2, 1), value=-1.0)
        y = F.interpolate(y, scale_factor=2, mode="nearest") + F.interpolate(y, size=(12, 14), mode="nearest")
        w = F.interpolate(x, size=(9, 7), mode="bilinear") + F.interpolate(x, size=(9, 7), mode="bilinear",
                                                                           align_corners=True)
        v = F.avg_pool1d(F.max_pool1d(z, 2), 3, 1, 1).permute(0, 2, 1).unsqueeze(1).squeeze(0)
        return y.reshape(1, -1), w.mean((2, 3)), F.conv1d(z, torch.ones(2, 3, 3) / 9).flatten(), v


MODULES = {f"{name}-{opset}": (cls, shapes, opset) for name, cls, shapes, opsets in [
    ("convnet", ConvNet, [(2, 3, 12, 12)], (13, 17)), ("tokens", Tokens, [(2, 3, 6)], (13, 17)),
    ("shapes", Shapes, [(1, 4, 6, 6), (1, 3, 10)], (13, 17)), ("norms", Norms, [(2, 3, 4)], (20,))]
    for opset in opsets}


@pytest.mark.parametrize("name", list(MODULES))
def test_exported_torch_module_matches_torch(name):
    torch.manual_seed(0)
    cls, shapes, opset = MODULES[name]
    module = cls().eval()
    xs = [torch.randn(*s) for s in shapes]
    g = load_onnx(export(module, *xs, opset=opset))
    verify(g)
    with torch.no_grad():
        want = module(*xs)
    want = want if isinstance(want, tuple) else (want,)
    got = interpreter.run(g, *(x.numpy() for x in xs))
    assert len(got) == len(want)
    for o, w in zip(got, want):
        np.testing.assert_allclose(o, w.numpy(), rtol=1e-4, atol=1e-5)
    expect = {"convnet": {"batch_norm", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "hardswish",
                          "adaptive_avg_pool", "linear", "softmax", "relu6", "leaky_relu", "prelu"},
              "tokens": {"linear", "silu", "clamp", "hardsigmoid", "log_softmax", "mean"},
              "shapes": {"split", "concat", "slice", "pad", "resize", "transpose", "reshape", "conv1d",
                         "max_pool1d", "avg_pool1d"},
              "norms": {"layer_norm", "gelu"}}[name.split("-")[0]]
    assert expect <= set(g.count())
    if name.startswith("tokens"):  # MatMul + Add and x * Sigmoid(x) come back as single ops
        assert g.count("linear") == 2 and g.count("add") == 1 and g.count("sigmoid") == 1


@pytest.mark.parametrize("slope", [(3, 1, 1), (1,), (5,)])
def test_prelu_matches_onnxruntime(slope):
    model = make([node("PRelu", ["x", "s"], "y")], {"x": [2, 3, 4, 5]}, ["y"], dict(s=rnd(*slope)))
    x = rnd(2, 3, 4, 5)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    g = load_onnx(model)
    assert g.count() == {"prelu": 1}
    np.testing.assert_allclose(interpreter.run(g, x)[0], want, rtol=1e-6, atol=0)


def test_value_names_follow_onnx_node_names():
    g = load_onnx(export(ConvNet(), torch.randn(1, 3, 12, 12)))
    assert g.inputs[0].name == "x0"
    assert any(n.name == "_conv_Conv" and n.op == "conv2d" for n in g.nodes)
    model = make([helper.make_node("Relu", ["x"], ["y"])], {"x": [2, 3]}, ["y"])
    assert [n.name for n in load_onnx(model).nodes] == ["Relu_0"]


# ---------------------------------------------------------------- hand-written ONNX, oracle onnxruntime

def make(nodes, inputs: dict, outputs, inits: dict | None = None, opset=17) -> onnx.ModelProto:
    """A model of `nodes`; `outputs` is {name: shape}, or a list of names typed by shape inference."""
    f32, typed = TensorProto.FLOAT, isinstance(outputs, dict)
    outs = [helper.make_tensor_value_info(o, f32, s) for o, s in outputs.items()] if typed else \
        [helper.make_empty_tensor_value_info(o) for o in outputs]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(k, f32, s) for k, s in inputs.items()], outs,
        [onnx.numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    ops = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))
    if not typed:
        inferred = onnx.shape_inference.infer_shapes(model).graph
        types = {v.name: v.type for v in [*inferred.value_info, *inferred.output]}
        for o in model.graph.output:
            o.type.CopyFrom(types[o.name])
    return model


def check_vs_ort(model, input_shapes=None):
    g = load_onnx(model, input_shapes=input_shapes)
    verify(g)
    arrays = [rnd(*v.shape) for v in g.inputs]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {v.name: a for v, a in zip(g.inputs, arrays)})
    for o, w in zip(interpreter.run(g, *arrays), want, strict=True):
        np.testing.assert_allclose(o, w, rtol=1e-4, atol=1e-5)
    return g


def node(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs if isinstance(outs, list) else [outs], **attrs)


I64 = lambda *v: np.array(v, np.int64)  # noqa: E731

FORMS = {
    "gemm-transA-alpha-beta-bias": (
        [node("Gemm", ["x", "w", "c"], "y", transA=1, alpha=0.5, beta=2.0)],
        {"x": [4, 3]}, dict(w=rnd(4, 5), c=rnd(1, 5)), {"linear": 1, "transpose": 1}),
    "gemm-matrix-c": (
        [node("Gemm", ["x", "w", "c"], "y", transB=1)], {"x": [3, 4]}, dict(w=rnd(5, 4), c=rnd(3, 5)),
        {"linear": 1, "add": 1}),
    "gemm-dynamic-b": (
        [node("Gemm", ["x", "b", "c"], "y", transB=1, alpha=2.0, beta=0.5)], {"x": [3, 4], "b": [5, 4]},
        dict(c=rnd(5)), {"matmul": 1, "transpose": 1, "mul": 1, "add": 1}),
    "matmul-add-bias-first": (
        [node("MatMul", ["x", "w"], "m"), node("Add", ["bias", "m"], "y")], {"x": [2, 3, 4]},
        dict(w=rnd(4, 5), bias=rnd(5)), {"linear": 1}),
    "matmul-shared-not-fused": (
        [node("MatMul", ["x", "w"], "m"), node("Add", ["m", "bias"], "y"), node("Relu", ["m"], "r")],
        {"x": [2, 4]}, dict(w=rnd(4, 5), bias=rnd(5)), {"linear": 1, "add": 1, "relu": 1}),
    "conv-same-upper": ([node("Conv", ["x", "w"], "y", auto_pad="SAME_UPPER", strides=[2, 2])],
                        {"x": [1, 2, 7, 8]}, dict(w=rnd(3, 2, 4, 3)), {"conv2d": 1}),
    "conv-same-lower": ([node("Conv", ["x", "w"], "y", auto_pad="SAME_LOWER")],
                        {"x": [1, 2, 6, 6]}, dict(w=rnd(3, 2, 2, 2)), {"conv2d": 1}),
    "conv-valid": ([node("Conv", ["x", "w", "b"], "y", auto_pad="VALID", dilations=[2])],
                   {"x": [1, 2, 9]}, dict(w=rnd(3, 2, 3), b=rnd(3)), {"conv1d": 1}),
    "maxpool-same": ([node("MaxPool", ["x"], "y", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")],
                     {"x": [1, 2, 7, 7]}, {}, {"max_pool2d": 1}),
    "avgpool-ceil-count-pad": ([node("AveragePool", ["x"], "y", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                     ceil_mode=1, count_include_pad=1)], {"x": [1, 2, 6, 6]}, {}, {"avg_pool2d": 1}),
    "reshape-zero-and-minus-one": ([node("Reshape", ["x", "s"], "y")], {"x": [2, 3, 4]}, dict(s=I64(0, -1)),
                                   {"reshape": 1}),
    "squeeze-unsqueeze": ([node("Unsqueeze", ["x", "a"], "u"), node("Squeeze", ["u", "b"], "y")],
                          {"x": [2, 1, 3]}, dict(a=I64(-1, 0), b=I64(2)), {"reshape": 2}),
    "squeeze-all": ([node("Squeeze", ["x"], "y")], {"x": [1, 3, 1, 2]}, {}, {"reshape": 1}),
    "split-equal": ([node("Split", ["x"], ["a", "b"], axis=-1)], {"x": [2, 6]}, {}, {"split": 1}),
    "clip-min-only": ([node("Clip", ["x", "lo"], "y")], {"x": [2, 3]}, dict(lo=np.float32(0)), {"relu": 1}),
    "clip-max-only": ([node("Clip", ["x", "", "hi"], "y")], {"x": [2, 3]}, dict(hi=np.float32(0.3)), {"clamp": 1}),
    "hardsigmoid-onnx-default": ([node("HardSigmoid", ["x"], "y")], {"x": [2, 5]}, {},
                                 {"mul": 1, "add": 1, "clamp": 1}),
    "resize-scales-nearest-half-pixel": (
        [node("Resize", ["x", "", "s"], "y", mode="nearest")], {"x": [1, 2, 3, 4]},
        dict(s=np.array([1, 1, 2, 3], np.float32)), {"resize": 1}),
    "reducemean-all-axes": ([node("ReduceMean", ["x"], "y", keepdims=0)], {"x": [2, 3]}, {}, {"mean": 1}),
    "constant-node-and-folding": (
        [node("Constant", [], "k", value=onnx.numpy_helper.from_array(I64(3, 2))),
         node("Shape", ["x"], "s", start=1), node("Gather", ["s", "zero"], "g"),
         node("Mul", ["g", "two"], "six"), node("Reshape", ["x", "k"], "r"), node("Add", ["r", "r"], "y")],
        {"x": [1, 6]}, dict(zero=I64(0), two=I64(2)), {"reshape": 1, "add": 1}),
    "opset18-split-num-outputs-pad-axes-reducemean-input": (
        [node("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3), node("Pad", ["c", "p", "v", "ax"], "y"),
         node("ReduceMean", ["a", "ax"], "m", keepdims=1), node("Concat", ["b", "m"], "z", axis=2)],
        {"x": [2, 8, 3]}, dict(p=I64(1, 2), v=np.float32(0.5), ax=I64(-1)), {"split": 1, "pad": 1, "mean": 1}),
    "dropout-ratio": ([node("Dropout", ["x", "r"], "y")], {"x": [2, 3]}, dict(r=np.float32(0.25)), {"dropout": 1}),
    "opset11-attribute-axes-and-split-converted": (
        [node("Unsqueeze", ["x"], "u", axes=[0]), node("Split", ["u"], ["a", "b"], axis=2, split=[1, 2]),
         node("Squeeze", ["a"], "y", axes=[0, 2])], {"x": [2, 3]}, {}, {"reshape": 2, "split": 1}),
    "opset9-upsample-and-softmax-converted": (
        [node("Upsample", ["x", "s"], "u", mode="nearest"), node("Softmax", ["u"], "y", axis=1)],
        {"x": [1, 2, 3, 4]}, dict(s=np.array([1, 1, 2, 2], np.float32)), {"resize": 1, "softmax": 1}),
    # composites of IR ops
    "neg-reciprocal-softsign-selu-elu": (
        [node("Neg", ["x"], "n"), node("Reciprocal", ["n"], "r"), node("Softsign", ["r"], "s"),
         node("Selu", ["s"], "e", alpha=1.5, gamma=0.8), node("Elu", ["e"], "y", alpha=0.3)],
        {"x": [2, 5]}, {}, {"mul": 2, "div": 2, "elu": 2}),
    "variadic-sum-max-min": ([node("Sum", ["x", "w", "x"], "s"), node("Max", ["s", "w", "x"], "m"),
                              node("Min", ["m", "w"], "y")], {"x": [2, 3, 4]}, dict(w=rnd(3, 1)),
                             {"add": 2, "maximum": 2, "minimum": 1}),
    "reducesum-reducemax-reducemin": ([node("ReduceSum", ["x", "ax"], "s", keepdims=0), node("ReduceMax", ["s"], "y"),
                                       node("ReduceMin", ["x"], "z", axes=[0, 2], keepdims=0)],
                                      {"x": [2, 3, 4]}, dict(ax=I64(-1)), {"reduce": 3}),
    "shrink-soft": ([node("Shrink", ["x"], "y", lambd=0.7, bias=0.7)], {"x": [3, 4]}, {}, {"clamp": 1, "sub": 1}),
    "tile-expand": ([node("Tile", ["x", "r"], "t"), node("Expand", ["t", "s"], "y")], {"x": [2, 1, 3]},
                    dict(r=I64(1, 2, 2), s=I64(4, 1, 2, 1)), {"tile": 2, "reshape": 1}),
    "pad-reflect-edge": ([node("Pad", ["x", "p"], "r", mode="reflect"), node("Pad", ["r", "p"], "y", mode="edge")],
                         {"x": [1, 2, 4, 5]}, dict(p=I64(0, 1, 3, 2, 0, 0, 1, 4)), {"concat": 6}),
    "depth-to-space-dcr-crd-space-to-depth": (
        [node("DepthToSpace", ["x"], "d", blocksize=2), node("DepthToSpace", ["x"], "c", blocksize=2, mode="CRD"),
         node("SpaceToDepth", ["d"], "a", blocksize=2), node("Add", ["d", "c"], "y")],
        {"x": [1, 8, 2, 3]}, {}, {"transpose": 3}),
    "gather-constant-indices": (
        [node("Gather", ["x", "i"], "a", axis=1), node("Gather", ["x", "j"], "b", axis=-1),
         node("Gather", ["x", "k"], "y", axis=0)],
        {"x": [3, 5, 4]}, dict(i=I64(1, 3), j=np.array([[3, 0], [-1, 1]], np.int64), k=I64(2)), {"slice": 6}),
    "instance-norm-and-lrn": ([node("InstanceNormalization", ["x", "s", "b"], "n", epsilon=1e-3),
                               node("LRN", ["n"], "y", size=3, alpha=0.01, beta=0.6, bias=2.0)],
                              {"x": [2, 4, 3, 5]}, dict(s=rnd(4), b=rnd(4)), {"layer_norm": 1, "pow": 1}),
    "conv3d-groups-pads-strides-dilation": (
        [node("Conv", ["x", "w", "b"], "y", group=2, pads=[1, 0, 1, 2, 1, 0], strides=[2, 1, 2], dilations=[2, 1, 1])],
        {"x": [2, 4, 6, 5, 6]}, dict(w=rnd(6, 2, 2, 3, 2), b=rnd(6)), {"conv2d": 1}),
    "maxpool3d-avgpool3d": (
        [node("MaxPool", ["x"], "y", kernel_shape=[2, 3, 2], strides=[2, 1, 2], pads=[1, 1, 0, 1, 1, 1]),
         node("AveragePool", ["x"], "z", kernel_shape=[3, 2, 2], strides=[2, 2, 1], pads=[1, 0, 1, 0, 1, 1]),
         node("AveragePool", ["x"], "a", kernel_shape=[3, 2, 2], pads=[1, 1, 0, 1, 0, 1], count_include_pad=1)],
        {"x": [1, 2, 5, 4, 5]}, {}, {"max_pool2d": 1, "avg_pool2d": 2}),
}


@pytest.mark.parametrize("name", list(FORMS))
def test_onnx_form_matches_onnxruntime(name):
    nodes, inputs, inits, counts = FORMS[name]
    opset = int(name[5:name.index("-")]) if name.startswith("opset") else 17
    outs = [o for n in nodes for o in n.output if o in ("y", "z", "a", "b")]
    g = check_vs_ort(make(nodes, inputs, outs, inits, opset))
    assert {k: v for k, v in g.count().items() if k in counts} == counts


def test_opset6_prelu_slope_is_per_channel_and_big_constants_are_made_not_folded():
    x, slope = rnd(2, 3, 4), np.float32([0.1, -2, 3])
    model = make([node("PRelu", ["x", "s"], "y")], {"x": [2, 3, 4], "s": [3]}, ["y"], opset=6)
    np.testing.assert_allclose(interpreter.run(load_onnx(model), x, slope)[0],
                               np.where(x >= 0, x, x * slope.reshape(3, 1)), rtol=1e-6)
    value = onnx.numpy_helper.from_array(np.float32([0.5]))
    big = make([node("ConstantOfShape", ["s"], "c", value=value), node("Gemm", ["x", "c"], "y")], {"x": [1, 4096]},
               ["y"], dict(s=I64(4096, 4097)))
    g = check_vs_ort(big)
    assert g.count() == {"linear": 1}


def test_dynamic_dims_need_input_shapes_and_shape_chains_fold():
    class Flat(nn.Module):
        def forward(self, x):
            return torch.relu(x).view(x.size(0), -1)
    model = export(Flat(), torch.randn(2, 3, 4), dynamic_axes={"x0": {0: "batch"}})
    assert "Shape" in {n.op_type for n in model.graph.node}
    with pytest.raises(UsageError, match=r"x0: \[batch, 3, 4\]") as err:
        load_onnx(model)
    assert "input_shapes" in err.value.hint
    g = check_vs_ort(model, input_shapes={"x0": (5, 3, 4)})
    assert g.count() == {"relu": 1, "reshape": 1} and g.outputs[0].shape == (5, 12)
    with pytest.raises(UsageError, match="declares"):
        load_onnx(model, input_shapes={"x0": (5, 3, 5)})
    with pytest.raises(UsageError, match="nope"):
        load_onnx(model, input_shapes={"nope": (1,)})


# ---------------------------------------------------------------- errors

def test_unsupported_ops_are_listed_together_with_node_names():
    nodes = [node("CumSum", ["x", "axis"], "e", name="cumsum_it"), node("Relu", ["e"], "r"),
             node("Resize", ["r", "", "s"], "u", name="cubic", mode="cubic"),
             helper.make_node("Frob", ["x"], ["f"], name="custom", domain="my.ops"), node("Add", ["u", "f"], "y")]
    inits = dict(axis=I64(1), s=np.array([1, 1, 2, 2], np.float32))
    model = make(nodes, {"x": [1, 1, 2, 2]}, {"y": [1, 1, 4, 4]}, inits)
    model.opset_import.append(helper.make_opsetid("my.ops", 1))
    with pytest.raises(UnsupportedOpError) as err:
        load_onnx(model)
    items = [(i.op.split(" ")[0], i.node) for i in err.value.items]
    assert items == [("CumSum", "cumsum_it"), ("Resize", "cubic"), ("my.ops.Frob", "custom")]  # all at once
    assert "CumSum" in str(err.value) and "custom" in str(err.value)
    model.graph.node[0].CopyFrom(node("Identity", ["x"], "e"))  # now the cubic Resize is reached
    with pytest.raises(UnsupportedOpError, match=r"Resize \(mode=cubic.*cubic"):
        load_onnx(model)
    pool = make([node("MaxPool", ["x"], "y", kernel_shape=[2, 2], strides=[3, 3], pads=[1, 1, 1, 1], ceil_mode=1)],
                {"x": [1, 1, 4, 4]}, ["y"])  # ONNX keeps a last window in the padding that torch drops
    with pytest.raises(UnsupportedOpError, match="ceil_mode"):
        load_onnx(pool)


@pytest.fixture
def valid_file(tmp_path):
    path = tmp_path / "ok.onnx"
    onnx.save(export(ConvNet(), torch.randn(1, 3, 12, 12)), path)
    return path


def test_malformed_files(tmp_path, valid_file):
    assert load_onnx(valid_file).count("conv2d") == 2
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(1).bytes(3000))
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(valid_file.read_bytes()[:2000])
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    for bad in (junk, truncated, empty):
        with pytest.raises(ModelLoadError, match=bad.name) as err:
            load_onnx(bad)
        assert err.value.hint
    with pytest.raises(UsageError, match="missing.onnx"):
        load_onnx(tmp_path / "missing.onnx")
    broken = make([node("Relu", ["nowhere"], "y")], {"x": [1]}, {"y": [1]})
    with pytest.raises(ModelLoadError, match="onnx.checker"):
        load_onnx(broken)
    assert all(issubclass(e, Error) for e in (ModelLoadError, UsageError, UnsupportedOpError))


def test_exported_erf_gelu_compiles_to_one_gelu():
    """torch exports GELU before opset 20 as Div, Erf, Add, Mul, Mul; the imported graph computes it
    as onnxruntime does, and the default pipeline (canonicalize) makes it one gelu."""
    import mcuforge
    model = export(nn.Sequential(nn.Linear(8, 8), nn.GELU()), torch.zeros(1, 8))
    assert {n.op_type for n in model.graph.node} >= {"Erf", "Div"}
    x = rnd(3, 8) * 3
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x0": x[:1]})[0]
    g = load_onnx(model)
    np.testing.assert_allclose(interpreter.run(g, x[:1])[0], want, rtol=1e-5, atol=1e-6)
    art = mcuforge.compile(g, emit=())
    assert art.graph.count() == {"linear": 1, "gelu": 1}
    np.testing.assert_allclose(interpreter.run(art.graph, x[:1])[0], want, rtol=1e-5, atol=1e-6)
