"""mcuforge.qat: the fake-quantized module computes exactly what its compiled integer graph computes
(interpreter and C), before and after training, for int8 and int16x8, compressed weights and
learned scales; it starts as the post-training quantization and trains with the straight-through
estimator."""
import numpy as np
import pytest
import torch
from torch import nn

import mcuforge
from mcuforge import zoo
from mcuforge.ir.early_exit import quantize_input
from mcuforge.ir.interpreter import dequantize
from tests.support.cbuild import host_run


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.b(torch.relu(self.a(x))) + x)


def _conv_bn_relu():
    net = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 3, 1))
    net[1].running_mean.uniform_(-0.5, 0.5)
    net[1].running_var.uniform_(0.5, 2.0)
    return net


NETS = {
    "conv_bn_relu": (_conv_bn_relu, (1, 4, 6, 6)),
    "depthwise": (lambda: nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.ReLU6(), nn.Conv2d(4, 6, 1)),
                  (1, 4, 6, 6)),
    "linear": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 5)), (1, 4, 2, 2)),
    "residual": (Residual, (1, 4, 5, 5)),
}


def _make(name, seed=0, **options):
    torch.manual_seed(seed)
    factory, shape = NETS[name]
    net = factory().eval()
    return net, shape, mcuforge.qat(net, (torch.zeros(shape),), calibration=_calibration(shape), **options)


def _calibration(shape):
    return [np.random.default_rng(i).standard_normal(shape).astype(np.float32) for i in range(8)]


def _train(q, shape, steps=3, lr=0.05):
    """A few SGD steps towards random targets: every weight (and learned range) moves."""
    opt = torch.optim.SGD(q.parameters(), lr=lr)
    torch.manual_seed(1)
    x = torch.randn(4, *shape[1:])
    target = torch.randn_like(q(x))
    for _ in range(steps):
        opt.zero_grad()
        ((q(x) - target) ** 2).mean().backward()
        opt.step()


def _interpreted(art, x: torch.Tensor) -> np.ndarray:
    """The compiled integer model (io="int8") on each sample of x, dequantized."""
    v, o = art.graph.inputs[0], art.graph.outputs[0]
    q = o.type.quant
    outs = [art.run(quantize_input(v, s[None].numpy()))[0] for s in x]
    return np.concatenate([dequantize(y, scale=q.scale, zero_point=q.zero_point, axis=None) for y in outs])


@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
@pytest.mark.parametrize("name", list(NETS))
def test_forward_is_the_compiled_model_exactly(name, scheme):
    net, shape, q = _make(name, scheme=scheme)
    x = torch.randn(6, *shape[1:])
    ptq = mcuforge.compile(net, (torch.zeros(shape),), emit=(), quantize=scheme, calibration=_calibration(shape))
    np.testing.assert_array_equal(q(x).detach().numpy(), _interpreted(ptq, x))  # it starts as PTQ
    _train(q, shape)
    assert not np.array_equal(q.integer_graph().constants()[0].data, ptq.graph.constants()[0].data)
    art = mcuforge.compile(q, emit=())
    np.testing.assert_array_equal(q(x).detach().numpy(), _interpreted(art, x))


@pytest.mark.parametrize("weights", ["int4g32", "kmeans4"])
def test_compressed_weights_exact_and_in_their_format(weights):
    _, shape, q = _make("linear", weights=weights)
    _train(q, shape)
    art = mcuforge.compile(q, emit=())
    layers = [n for n in art.graph.nodes if n.op == "qlinear"]
    assert [n.attrs["wfmt"] for n in layers] == [weights] * 2
    x = torch.randn(5, *shape[1:])
    np.testing.assert_array_equal(q(x).detach().numpy(), _interpreted(art, x))


def test_learned_scales_move_and_stay_exact():
    _, shape, q = _make("residual", learn_scales=True)
    before = {k: p.detach().clone() for k, p in q.ranges.items()}
    _train(q, shape, lr=0.01)
    moved = [k for k, p in q.ranges.items() if not torch.equal(p, before[k])]
    assert moved, "no activation range was trained"
    x = torch.randn(5, *shape[1:])
    np.testing.assert_array_equal(q(x).detach().numpy(), _interpreted(mcuforge.compile(q, emit=()), x))


def test_per_tensor_weights_and_float_io():
    _, shape, q = _make("depthwise", per_channel=False)
    _train(q, shape)
    art = mcuforge.compile(q, emit=(), io="float")
    assert all(n.inputs[1].type.quant.axis is None for n in art.graph.nodes if n.op == "qconv2d")
    x = torch.randn(3, *shape[1:])
    np.testing.assert_array_equal(q(x).detach().numpy(), np.concatenate([art.run(s[None])[0] for s in x]))


def test_generated_c_equals_the_forward_pass(tmp_path):
    _, shape, q = _make("conv_bn_relu", weights="int4g32")
    _train(q, shape)
    art = mcuforge.compile(q, emit=(), passes="deploy")
    x = torch.randn(1, *shape[1:])
    (got,) = host_run(tmp_path, art.graph, [quantize_input(art.graph.inputs[0], x.numpy())])
    o = art.graph.outputs[0].type.quant
    assert art.graph.count("transpose")  # the C model runs channel-last inside
    np.testing.assert_array_equal(dequantize(got, scale=o.scale, zero_point=o.zero_point, axis=None),
                                  q(x).detach().numpy())


def test_training_reduces_the_loss():
    net, shape, q = _make("linear")
    torch.manual_seed(2)
    x = torch.randn(64, *shape[1:])
    with torch.no_grad():
        target = net(x) + 0.5 * torch.randn(64, 5)
    opt = torch.optim.Adam(q.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = ((q(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses


def test_errors():
    net, shape, q = _make("linear")
    with pytest.raises(mcuforge.UsageError, match="scheme"):
        mcuforge.qat(net, (torch.zeros(shape),), calibration=np.zeros(shape, np.float32), scheme="int4")
    with pytest.raises(mcuforge.UsageError, match="weight format"):
        mcuforge.qat(net, (torch.zeros(shape),), calibration=np.zeros(shape, np.float32), weights="int3")
    with pytest.raises(mcuforge.UsageError, match="quantized already"):
        mcuforge.compile(q, emit=(), quantize="int8")
    unfoldable = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()
    with pytest.raises(mcuforge.UsageError, match="batch_norm"):
        mcuforge.qat(unfoldable, (torch.zeros(1, 4, 3, 3),), calibration=np.zeros((1, 4, 3, 3), np.float32))


@pytest.mark.parametrize("name", zoo.names())
def test_every_zoo_model_exact(name, float_zoo):
    graph, (example,) = float_zoo(name)
    calibration = [np.random.default_rng(i).standard_normal(example.shape).astype(np.float32) for i in range(2)]
    q = mcuforge.qat(graph, calibration=calibration)
    x = torch.from_numpy(calibration[0] + 0.1)
    ys = q(x)
    ys = ys if isinstance(ys, tuple) else (ys,)
    art = mcuforge.compile(q, emit=(), io="float")
    for got, want in zip(ys, art.run(x), strict=True):
        np.testing.assert_array_equal(got.detach().numpy(), want)


def test_onnx_exports(tmp_path):
    import onnxruntime as ort
    _, shape, q = _make("residual", weights="int4g32")
    _train(q, shape)
    x = torch.randn(*shape)
    qdq = mcuforge.compile(q, emit=("onnx",), out_dir=tmp_path / "qdq")  # QDQ, as after PTQ: the trained weights
    assert qdq.ctx.qdq_graph.count("dequantize") and qdq.files["onnx"].is_file()
    exact = mcuforge.compile(q, emit=("onnx",), onnx="integer", io="float", out_dir=tmp_path / "integer")
    session = ort.InferenceSession(str(exact.files["onnx"]))
    (got,) = session.run(None, {exact.graph.inputs[0].name: x.numpy()})
    np.testing.assert_array_equal(got, q(x).detach().numpy())
