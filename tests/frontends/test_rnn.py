"""Recurrent layers unrolled into IR ops (frontends/rnn.py): torch nn.LSTM / nn.GRU / nn.RNN and
their cells through fx (oracle: torch); the same layers exported to ONNX, and hand-written ONNX
LSTM / GRU / RNN nodes in the forms torch does not export (oracle: onnxruntime, and onnx's
reference evaluator for layout=1); TFLite's float UNIDIRECTIONAL_SEQUENCE_LSTM with its state
(LiteRT, TFLite Micro over a stream); the refusals; the C backend on the host; and an int8
keyword-spotting models (conv1d, LSTM / GRU / RNN, linear) whose C and TFLite Micro runs are
bit-exact to the interpreter (LiteRT's optimized kernels within 1 LSB)."""
import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn
from ai_edge_litert import schema_py_generated as fb
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from support.cbuild import build_and_check, calibration, check_host, random_inputs
from support.tflite_files import Flatbuffer

import mcuforge
from mcuforge.backends.tflite.runtime import run_litert, run_tflm, run_tflm_frames
from mcuforge.errors import UnsupportedOpError
from mcuforge.frontends.fx import trace
from mcuforge.frontends.onnx import load_onnx
from mcuforge.frontends.tflite import load_tflite
from mcuforge.ir.interpreter import run

RNG = np.random.default_rng(0)
VARIANTS = {"one layer": {}, "two layers bidirectional": dict(num_layers=2, bidirectional=True),
            "no bias": dict(bias=False), "relu": dict(nonlinearity="relu")}
LAYERS = [(cls, first, name) for cls in (nn.LSTM, nn.GRU, nn.RNN) for first in (False, True) for name in VARIANTS
          if name != "relu" or cls is nn.RNN]


def rnd(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


class Flat(nn.Module):
    """A recurrent layer returning (output, h_n[, c_n]) as a flat tuple, from zero states."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def flat(self, out):
        return (out[0], out[1][0], out[1][1]) if isinstance(self.layer, nn.LSTM) else (out[0], out[1])

    def forward(self, x):
        return self.flat(self.layer(x))


class FromH(Flat):
    def forward(self, x, h):
        return self.flat(self.layer(x, h))


class FromHC(Flat):
    def forward(self, x, h, c):
        return self.flat(self.layer(x, (h, c)))


def layer(cls, batch_first, variant, given_states=False, hidden=7):
    torch.manual_seed(0)
    wrap = (FromHC if cls is nn.LSTM else FromH) if given_states else Flat
    return wrap(cls(5, hidden, batch_first=batch_first, **VARIANTS[variant])).eval()


def sequence(batch_first, steps=6, batch=2):
    return torch.from_numpy(rnd(batch, steps, 5) if batch_first else rnd(steps, batch, 5))


def states(m, batch=2):
    rnn = m.layer
    shape = (rnn.num_layers * (1 + rnn.bidirectional), batch, rnn.hidden_size)
    return [torch.from_numpy(rnd(*shape)) for _ in range(2 if isinstance(rnn, nn.LSTM) else 1)]


def close(got, want):
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls, batch_first, variant", LAYERS, ids=[f"{c.__name__}-{'bf' if b else 'tb'}-{v}"
                                                                   for c, b, v in LAYERS])
@pytest.mark.parametrize("given_states", [False, True], ids=["zero states", "given states"])
def test_torch_layer_matches_torch(cls, batch_first, variant, given_states):
    m, x = layer(cls, batch_first, variant, given_states), sequence(batch_first)
    inputs = (x, *states(m)) if given_states else (x,)
    with torch.no_grad():
        want = [t.numpy() for t in m(*inputs)]
    close(run(trace(m, inputs), *(t.numpy() for t in inputs)), want)


@pytest.mark.parametrize("cls, variant", [(nn.LSTM, "two layers bidirectional"), (nn.GRU, "one layer"),
                                          (nn.RNN, "relu")])
def test_torch_layer_in_c(tmp_path, cls, variant):
    m = layer(cls, True, variant, given_states=True)
    x, *hs = sequence(True, steps=5), *states(m)
    build_and_check(tmp_path, trace(m, (x, *hs)), m)


class Cells(nn.Module):
    """One step of each cell: the LSTM's from given states, the GRU's from its h, the RNN's from zero."""

    def __init__(self):
        super().__init__()
        self.lstm, self.gru, self.rnn = nn.LSTMCell(5, 7), nn.GRUCell(7, 6), nn.RNNCell(6, 4, bias=False)

    def forward(self, x, h, c, h2):
        h, c = self.lstm(x, (h, c))
        h2 = self.gru(h, h2)
        return h, c, h2, self.rnn(h2)


def test_cells_match_torch_in_the_interpreter_and_in_c(tmp_path):
    torch.manual_seed(0)
    m, xs = Cells().eval(), [torch.from_numpy(rnd(2, n)) for n in (5, 7, 7, 6)]
    g = trace(m, xs)
    with torch.no_grad():
        close(run(g, *(x.numpy() for x in xs)), [t.numpy() for t in m(*xs)])
    build_and_check(tmp_path, g, m)


@pytest.mark.filterwarnings("ignore:LSTM with projections")
def test_unbatched_input_and_projections_are_refused():
    for m, x, why in ((Flat(nn.LSTM(5, 7)), torch.randn(6, 5), "an unbatched"),
                      (Flat(nn.LSTM(5, 7, proj_size=3)), torch.randn(6, 2, 5), "proj_size > 0")):
        with pytest.raises(UnsupportedOpError, match=f"torch.nn.LSTM \\({why}"):
            trace(m, (x,))


def export(m, inputs) -> bytes:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, tuple(inputs), f, dynamo=False, input_names=[f"x{i}" for i in range(len(inputs))])
    return f.getvalue()


def ort_run(data: bytes, inputs):
    sess = ort.InferenceSession(data)
    return sess.run(None, {i.name: np.asarray(x) for i, x in zip(sess.get_inputs(), inputs)})


@pytest.mark.parametrize("cls, batch_first, variant", LAYERS, ids=[f"{c.__name__}-{'bf' if b else 'tb'}-{v}"
                                                                   for c, b, v in LAYERS])
def test_torch_exported_onnx_matches_onnxruntime(cls, batch_first, variant):
    m = layer(cls, batch_first, variant, given_states=True)
    inputs = [t.numpy() for t in (sequence(batch_first), *states(m))]
    data = export(m, [torch.from_numpy(a) for a in inputs])
    assert {"LSTM", "GRU", "RNN"} & {n.op_type for n in onnx.load_from_string(data).graph.node}
    close(run(load_onnx(onnx.load_from_string(data)), *inputs), ort_run(data, inputs))


def rnn_node(op, steps=4, batch=2, size=3, hidden=5, states=True, bias=True, **attrs) -> onnx.ModelProto:
    """One ONNX LSTM / GRU / RNN node with random constant weights; X, initial_h (and initial_c)
    are graph inputs, Y, Y_h (and Y_c) its outputs."""
    gates, dirs, layout = {"LSTM": 4, "GRU": 3, "RNN": 1}[op], 1 + (attrs.get("direction") == "bidirectional"), \
        attrs.get("layout", 0)
    init = [helper.make_tensor(n, TensorProto.FLOAT, a.shape, a.reshape(-1)) for n, a in (
        ("W", rnd(dirs, gates * hidden, size)), ("R", rnd(dirs, gates * hidden, hidden)),
        ("B", rnd(dirs, 2 * gates * hidden)))]
    x = ("X", [batch, steps, size] if layout else [steps, batch, size])
    s = [batch, dirs, hidden] if layout else [dirs, batch, hidden]
    ins = [x] + ([("h0", s)] + ([("c0", s)] if op == "LSTM" else []) if states else [])
    outs = [("Y", [batch, steps, dirs, hidden] if layout else [steps, dirs, batch, hidden]), ("Y_h", s)] + \
        ([("Y_c", s)] if op == "LSTM" else [])
    operands = ["X", "W", "R", "B" if bias else "", "", *(v[0] for v in ins[1:])]
    node = helper.make_node(op, operands, [o[0] for o in outs], hidden_size=hidden, **attrs)
    info = lambda pairs: [helper.make_tensor_value_info(n, TensorProto.FLOAT, sh) for n, sh in pairs]  # noqa: E731
    graph = helper.make_graph([node], op.lower(), info(ins), info(outs), init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


FORMS = [("LSTM", dict(direction="reverse")), ("LSTM", dict(direction="bidirectional", layout=1)),
         ("GRU", dict(linear_before_reset=0)), ("GRU", dict(linear_before_reset=1, direction="reverse")),
         ("GRU", dict(direction="bidirectional", layout=1)), ("RNN", dict(activations=["Relu"])),
         ("RNN", dict(direction="bidirectional", layout=1)), ("LSTM", dict(states=False, bias=False))]


@pytest.mark.parametrize("op, attrs", FORMS, ids=[f"{op}-{a}" for op, a in FORMS])
def test_onnx_node_matches_its_oracle(op, attrs):
    model = rnn_node(op, **attrs)
    xs = [rnd(*[d.dim_value for d in i.type.tensor_type.shape.dim]) for i in model.graph.input]
    feeds = {i.name: x for i, x in zip(model.graph.input, xs)}
    # onnxruntime runs layout 0 only
    want = ReferenceEvaluator(model).run(None, feeds) if attrs.get("layout") else \
        ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    close(run(load_onnx(model), *xs), want)


def test_constant_full_sequence_lens_are_accepted_others_refused():
    model = rnn_node("GRU")
    model.graph.node[0].input[4] = "lens"
    model.graph.initializer.append(helper.make_tensor("lens", TensorProto.INT32, [2], [4, 4]))
    xs = [rnd(4, 2, 3), rnd(1, 2, 5)]
    want = ort.InferenceSession(model.SerializeToString()).run(None, dict(X=xs[0], h0=xs[1]))
    close(run(load_onnx(model), *xs), want)
    model.graph.initializer[-1].CopyFrom(helper.make_tensor("lens", TensorProto.INT32, [2], [4, 3]))
    with pytest.raises(UnsupportedOpError, match="GRU \\(sequence_lens other than a constant 4 .*pad.*node GRU_0"):
        load_onnx(model)


@pytest.mark.parametrize("op, attrs, why", [
    ("LSTM", dict(activations=["Sigmoid", "Relu", "Tanh"]), "activations"),
    ("LSTM", dict(clip=3.0), "cell clipping"),
    ("GRU", dict(activations=["HardSigmoid", "Tanh"]), "activations")])
def test_other_activations_and_clipping_are_refused(op, attrs, why):
    with pytest.raises(UnsupportedOpError, match=f"{op} \\({why}"):
        load_onnx(rnn_node(op, **attrs))


def sequence_lstm_file(time_major: bool, batch=2, steps=5, size=3, hidden=4, hybrid=False, **absent) -> bytes:
    """A float UNIDIRECTIONAL_SEQUENCE_LSTM as TensorFlow's converter writes it: the gates' weights
    and biases as 12 constants, h and c variable tensors; `absent` adds peepholes (9) or drops an
    input; `hybrid` makes the input weights int8 (TFLite's hybrid kernel)."""
    f = Flatbuffer()
    x = f.tensor([steps, batch, size] if time_major else [batch, steps, size])
    w = (lambda: f.const(np.ones((hidden, size), np.int8), scale=0.1, zero_point=0)) if hybrid else \
        (lambda: f.const(rnd(hidden, size)))
    ins = [x, *(w() for _ in range(4)), *(f.const(rnd(hidden, hidden)) for _ in range(4)),
           -1, -1, -1, *(f.const(rnd(hidden)) for _ in range(4)), -1, -1]
    for i in absent.values():
        ins[i] = f.const(rnd(hidden)) if i == 9 else -1
    for _ in range(2):
        ins.append(f.tensor([batch, hidden]))
        f.tensors[-1].isVariable = True
    y = f.op(fb.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM, ins + [-1] * 4,
             [f.tensor([steps, batch, hidden] if time_major else [batch, steps, hidden])],
             fb.UnidirectionalSequenceLSTMOptionsT(fusedActivationFunction=fb.ActivationFunctionType.TANH,
                                                   timeMajor=time_major))
    return f.bytes([x], [y])


@pytest.mark.parametrize("time_major", [False, True])
def test_tflite_sequence_lstm_matches_litert_and_keeps_its_state_like_tflite_micro(tmp_path, time_major):
    data = sequence_lstm_file(time_major)
    g = load_tflite(data)
    assert len(g.states) == 2
    frames = [[rnd(*g.inputs[0].shape)] for _ in range(3)]
    close(run(g, *frames[0]), run_litert(data, *frames[0]))
    state = {s.read.name: s.init for s in g.states}
    for got, want in zip((run(g, *xs, state=state) for xs in frames), run_tflm_frames(data, frames), strict=True):
        close(got, want)
    build_and_check(tmp_path, g)  # one invocation from the initial states


@pytest.mark.parametrize("variant, why", [(dict(peephole=9), "peepholes"), (dict(cifg=1), "no input gate"),
                                          (dict(hybrid=True), "an integer or hybrid LSTM")])
def test_tflite_sequence_lstm_variants_are_refused(variant, why):
    with pytest.raises(UnsupportedOpError, match=f"UNIDIRECTIONAL_SEQUENCE_LSTM: {why}"):
        load_tflite(sequence_lstm_file(False, **variant))


class KeywordSpotter(nn.Module):
    """MFCC frames -> conv1d -> a recurrent layer -> the last step's classes."""

    def __init__(self, cls=nn.LSTM, **kw):
        super().__init__()
        self.conv = nn.Conv1d(10, 16, 3, stride=2)
        self.rnn = cls(16, 24, batch_first=True, **kw)
        self.fc = nn.Linear(24 * (1 + kw.get("bidirectional", False)), 4)

    def forward(self, x):
        y, _ = self.rnn(torch.relu(self.conv(x)).transpose(1, 2))
        return self.fc(y[:, -1])


SPOTTERS = {"lstm": (nn.LSTM, {}), "gru": (nn.GRU, {}), "lstm 2 layers bidirectional":
            (nn.LSTM, dict(num_layers=2, bidirectional=True)), "rnn relu": (nn.RNN, dict(nonlinearity="relu"))}


def spotter(name, tmp_path, **compile_options):
    torch.manual_seed(0)
    cls, kw = SPOTTERS[name]
    m, x = KeywordSpotter(cls, **kw).eval(), torch.randn(1, 10, 49)
    return m, x, mcuforge.compile(m, (x,), out_dir=tmp_path / "out", **compile_options)


def test_float_exports_run_in_onnxruntime_and_litert(tmp_path):
    m, x, art = spotter("lstm 2 layers bidirectional", tmp_path, emit=("onnx", "tflite"))
    with torch.no_grad():
        want = m(x).numpy()
    close(ort_run(art.files["onnx"].read_bytes(), [x.numpy()]), [want])
    close(run_litert(art.files["tflite"].read_bytes(), x.numpy()), [want])


@pytest.mark.parametrize("name", SPOTTERS)
def test_int8_spotter_is_all_integer_and_bit_exact_in_c_and_tflm(tmp_path, name):
    m, x, art = spotter(name, tmp_path, emit=("tflite",), quantize="int8", calibration=calibration((1, 10, 49), 8))
    g = art.graph
    assert not {"quantize", "dequantize", "linear", "sigmoid", "tanh"} & {n.op for n in g.nodes}
    check_host(tmp_path / "c", g, compilers=("gcc",))
    xs = random_inputs(g)
    data = art.files["tflite"].read_bytes()
    ours = run(g, *xs)[0]
    np.testing.assert_array_equal(run_tflm(data, *xs)[0], ours)
    np.testing.assert_allclose(run_litert(data, *xs)[0].astype(np.int32), ours, atol=1)  # optimized kernels: 1 LSB


def test_int8_lstm_spotter_is_close_to_float(tmp_path):
    m, x, art = spotter("lstm", tmp_path, emit=(), quantize="int8", calibration=calibration((1, 10, 49), 8))
    g = art.graph
    qin, qout = g.inputs[0].type.quant, g.outputs[0].type.quant
    sample = calibration(x.shape, 1, seed=5)[0]
    q = np.clip(np.round(sample / qin.scale[0]) + qin.zero_point[0], -128, 127).astype(np.int8)
    with torch.no_grad():
        want = m(torch.from_numpy(sample)).numpy()
    np.testing.assert_allclose((run(g, q)[0].astype(np.float32) - qout.zero_point[0]) * qout.scale[0], want, atol=0.02)
