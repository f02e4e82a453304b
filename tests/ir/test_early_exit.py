"""Early-exit networks: the confidence test against torch's softmax, the exit-first schedule, the
interpreter's semantics against torch, and the generated C (host gcc, every sample; QEMU, the
instruction count falls with the threshold as the interpreter's MACs say; per layer, the layers
after the exit taken are not run)."""
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import mcuforge
from mcuforge.backends.c.bench import make
from mcuforge.backends.c.emit import emit_c
from mcuforge.errors import UsageError
from mcuforge.ir.early_exit import confidence_test, confident, order, resolve, run_dataset, run_exits
from mcuforge.ir.graph import Graph
from mcuforge.ir.types import QuantParams, TensorType


class TwoExits(nn.Module):
    def __init__(self, probs=False):
        super().__init__()
        self.probs = probs  # heads end in softmax: the exits test probabilities, not logits
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.head1 = nn.Sequential(nn.Flatten(), nn.Linear(4 * 36, 5))
        self.body = nn.Sequential(nn.Conv2d(4, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                                  nn.ReLU(), nn.Flatten())
        self.head2 = nn.Linear(16 * 36, 5)

    def forward(self, x):
        h = self.stem(x)
        out = self.head2(self.body(h)), self.head1(h)  # the cheap exit is the second output
        return tuple(torch.softmax(o, 1) for o in out) if self.probs else out


def model_and_samples(n=24, probs=False):
    torch.manual_seed(0)
    m = TwoExits(probs).eval()
    xs = [np.random.default_rng(i).standard_normal((1, 1, 6, 6)).astype(np.float32) for i in range(n)]
    return m, xs


@pytest.mark.parametrize("scale", [0.02, 0.1, 0.5])
def test_int8_logits_test_matches_torch_softmax(scale):
    g = Graph()
    v = g.add_input("logits", TensorType((1, 10), mcuforge.ir.types.DType.i8, QuantParams([scale], [3])))
    rng = np.random.default_rng(0)
    checked = 0
    for theta in (0.3, 0.6, 0.9, 0.99):
        t = confidence_test(v, theta)
        for _ in range(300):
            q = rng.integers(-128, 128, 10).astype(np.int8)
            p = torch.softmax(torch.tensor(scale * (q.astype(np.float64) - 3)), 0).max().item()
            if abs(p - theta) > 1e-3 * theta + 10 * len(q) / 2 ** 16:  # beyond the table's rounding
                assert confident(t, q) == (p >= theta), (q, p, theta)
                checked += 1
    assert checked > 1000


def test_order_puts_the_cheap_exit_first_and_run_exits_matches_torch():
    m, xs = model_and_samples(8)
    g = mcuforge.compile(m, (torch.from_numpy(xs[0]),), emit=(), passes="float").graph
    order(g, resolve(g, {1: 0.5, 0: None}))
    names = [n.name for n in g.nodes]
    assert names.index(g.outputs[1].producer.name) < min(names.index(n.name) for n in g.nodes if n.op == "conv2d"
                                                         and n.inputs[1].shape[0] == 16)
    for x in xs:
        with torch.no_grad():
            deep, cheap = (o.numpy() for o in m(torch.from_numpy(x)))
        p = torch.softmax(torch.from_numpy(cheap), 1).max().item()
        k, outs, spent = run_exits(g, {1: 0.5, 0: None}, x)
        assert k == (0 if p >= 0.5 else 1)
        np.testing.assert_allclose(outs[1], cheap, rtol=1e-5, atol=1e-5)
        assert (outs[0] is None) == (k == 0)
        if k == 1:
            np.testing.assert_allclose(outs[0], deep, rtol=1e-5, atol=1e-5)
        assert spent == (36 * 4 * 9 + 4 * 36 * 5 if k == 0 else 36 * (4 * 9 + 16 * 36 + 16 * 144) + 16 * 36 * 5 + 720)


def test_bad_exits_say_why():
    m, xs = model_and_samples(1)
    with pytest.raises(UsageError, match="not a graph output"):
        mcuforge.compile(m, (torch.from_numpy(xs[0]),), emit=(), exits={"nope": 0.5})
    with pytest.raises(UsageError, match="are not exits"):
        mcuforge.compile(m, (torch.from_numpy(xs[0]),), emit=(), exits={1: 0.5})
    with pytest.raises(UsageError, match=r"must be in \(0, 1\]"):
        mcuforge.compile(m, (torch.from_numpy(xs[0]),), emit=(), exits={1: 2.0, 0: None})


def _compile_int8(m, xs):
    return mcuforge.compile(m, (torch.from_numpy(xs[0]),), emit=(), quantize="int8", calibration=xs,
                            exits={1: 0.5, 0: None}, passes="deploy")  # channels-last, as for emit=("c",)


def _thresholds(graph, xs):
    """Three thresholds spread over the cheap exit's confidences on `xs`."""
    q, probs = graph.outputs[1].type.quant, graph.outputs[1].producer.op == "qsoftmax"
    scores = [q.scale[0] * (run_exits(graph, {1: 1.0, 0: None}, x)[1][1].astype(np.float32) - q.zero_point[0])
              for x in (mcuforge.ir.early_exit.quantize_input(graph.inputs[0], x) for x in xs)]
    conf = [float(s.max()) if probs else torch.softmax(torch.from_numpy(s), 1).max().item() for s in scores]
    return [float(np.quantile(conf, q)) for q in (0.2, 0.6, 0.95)]


def test_int8_probability_threshold_by_hand():
    m, xs = model_and_samples(4, probs=True)
    g = _compile_int8(m, xs).graph
    assert g.outputs[1].producer.op == "qsoftmax"  # scale 1/256, zero point -128
    t = confidence_test(g.outputs[1], 0.3)  # q >= 0.3 * 256 - 128 = -51.2
    assert (t.kind, t.bound) == ("probs", -51)
    assert confident(t, np.array([-51, -128], np.int8)) and not confident(t, np.array([-52, -60], np.int8))


@pytest.mark.parametrize("quantized,probs", [(False, False), (True, False), (False, True), (True, True)])
def test_host_c_takes_the_interpreters_exit_on_every_sample(tmp_path, quantized, probs):
    m, xs = model_and_samples(probs=probs)
    art = _compile_int8(m, xs) if quantized else mcuforge.compile(m, (torch.from_numpy(xs[0]),), emit=(),
                                                                   passes="deploy", exits={1: 0.5, 0: None})
    g = art.graph
    if quantized and not probs:  # stem conv 1->4 3x3 on 6x6, then the 144->5 head; then the rest
        assert art.ctx.stats["exit-order.macs_to_exit0"] == 36 * 4 * 9 + 144 * 5
        assert art.ctx.stats["exit-order.macs_to_exit1"] == art.report.total_macs
    for i, theta in enumerate(_thresholds(g, xs) if quantized else [0.25, 0.3] if probs else [0.3, 0.5]):
        exits = resolve(g, {1: theta, 0: None})
        stats = run_dataset(g, xs, exits)
        out = emit_c(g, tmp_path / str(i), exits=exits)
        assert "exit 0: output 1" in (out / "model.h").read_text()
        subprocess.run(["make", "-s", "host"], cwd=out, check=True)
        data = b"".join(mcuforge.ir.early_exit.quantize_input(g.inputs[0], x).tobytes() for x in xs)
        r = subprocess.run([str(out / "model_host"), "-b"], input=data, capture_output=True, check=True)
        assert [int(s) for s in re.findall(r"exit (\d+)", r.stderr.decode())] == stats.exits
        sizes = [v.type.nbytes for v in g.outputs]
        rows = [r.stdout[j:j + sum(sizes)] for j in range(0, len(r.stdout), sum(sizes))]
        for x, row, k, want in zip(xs, rows, stats.exits, stats.outputs, strict=True):
            if k == 1 and quantized:  # every output computed: the plan kept exit 0's result live to the end
                everything = run_exits(g, exits, mcuforge.ir.early_exit.quantize_input(g.inputs[0], x))[1]
                assert row == b"".join(o.tobytes() for o in everything)
            o = exits[k].output
            got = np.frombuffer(row[sum(sizes[:o]):sum(sizes[:o + 1])], want.dtype).reshape(want.shape)
            if quantized:
                assert got.tobytes() == want.tobytes()
            else:
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert 0 < stats.taken[0] < len(xs) or not quantized


def test_qemu_digits_example_instructions_fall_with_the_threshold(tmp_path, monkeypatch):
    """The two-exit digits CNN of examples/early_exit_digits.py (trained briefly) on 16 test
    images under QEMU: same exit and bytes as the interpreter on each, and the average
    instructions fall with the threshold in the order, and about the proportion, of the MACs."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "examples"))
    from early_exit_digits import TwoExitCNN, both_exits_loss, data, train
    x_train, x_test, y_train, _ = data()
    torch.manual_seed(0)
    model = train(TwoExitCNN(), x_train, y_train, epochs=2, loss=both_exits_loss)
    g = mcuforge.compile(model, (torch.from_numpy(x_test[:1]),), emit=(), quantize="int8", passes="deploy",
                         calibration=x_train[:100], exits={0: 0.9, 1: None}).graph
    images = [mcuforge.ir.early_exit.quantize_input(g.inputs[0], x) for x in x_test[:16]]
    sizes = [v.type.nbytes for v in g.outputs]
    measured, predicted = [], []
    for theta in (0.5, 0.9, 0.999):
        exits = resolve(g, {0: theta, 1: None})
        stats = run_dataset(g, images, exits)
        out = emit_c(g, tmp_path / str(theta), exits=exits)
        make(out, "cortex-m", tool="arm-none-eabi-gcc")
        counts = []
        for x, k, want in zip(images, stats.exits, stats.outputs, strict=True):
            (out / "input.bin").write_bytes(x.tobytes())
            log = subprocess.run(["make", "-s", "qemu"], cwd=out, capture_output=True, text=True, check=True).stdout
            assert f"exit {k}" in log
            o = exits[k].output
            assert (out / "output.bin").read_bytes()[sum(sizes[:o]):sum(sizes[:o + 1])] == want.tobytes()
            counts.append(int(re.search(r"\((\d+) instructions", log).group(1)))
        early = [c for c, k in zip(counts, stats.exits) if k == 0]
        late = [c for c, k in zip(counts, stats.exits) if k == 1]
        assert not early or not late or max(early) < min(late)
        measured.append(float(np.mean(counts)))
        predicted.append(stats.average_macs)
        print(f"\nthreshold {theta}: exit 1 taken {stats.taken[0]}/16, {stats.average_macs:,.0f} MACs and "
              f"{measured[-1]:,.0f} instructions on average")
    assert predicted[0] < predicted[1] < predicted[2] and measured[0] < measured[1] < measured[2]
    # instructions per MAC saved stay within a factor 2 of one another: the MACs predict the savings
    per_mac = [(measured[2] - m) / (predicted[2] - p) for m, p in zip(measured[:2], predicted[:2])]
    assert max(per_mac) < 2 * min(per_mac)


def test_bench_reports_the_interpreters_average_macs(tmp_path, capsys):
    """`mcuforge bench --exit ... --data x.npz`: the average MACs over the data set, as run_dataset
    computes them on the same compiled graph."""
    import json

    from mcuforge.compiler.cli import main
    m, xs = model_and_samples(n=16)
    data = np.concatenate(xs)
    np.savez(tmp_path / "x.npz", data)
    (tmp_path / "net.py").write_text(f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                                     "from test_early_exit import model_and_samples\n"
                                     "def net():\n    return model_and_samples()[0]\n")
    args = ["--input-shape", "1,1,6,6", "--quantize", "int8", "--calibration", str(tmp_path / "x.npz"),
            "--exit", "1=0.3", "--exit", "0"]
    assert main(["bench", f"{tmp_path / 'net.py'}:net", *args, "--data", str(tmp_path / "x.npz"), "--runs", "2",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    g = mcuforge.compile(m, (torch.from_numpy(xs[0]),), emit=(), quantize="int8", calibration=data, passes="deploy",
                         exits={1: 0.3, 0: None}).graph
    want = run_dataset(g, xs, resolve(g, {1: 0.3, 0: None}))
    assert r["exits_taken"] == want.taken and sum(want.taken) == 16 and min(want.taken) > 0
    assert r["average_macs"] == pytest.approx(want.average_macs) and want.average_macs < r["full_macs"]
    assert main(["bench", "zoo:tiny_cnn", "--data", str(tmp_path / "x.npz")]) == 2
    assert "no --exit" in capsys.readouterr().err


def test_layer_counts_of_an_early_exit(tmp_path):
    """An early exit taken: the layers after it are not run (None), the ones before it and the
    exit's layer still add up with invoke's entry to the whole, near SysTick's count."""
    from mcuforge.backends.c import bench
    m, xs = model_and_samples(2)
    g = mcuforge.compile(m, (torch.from_numpy(xs[0]),), emit=(), passes="deploy", exits={1: 1e-6, 0: None}).graph
    exits = resolve(g, {1: 1e-6, 0: None})  # any confidence passes: the first exit is always taken
    emit_c(g, tmp_path, exits=exits, profile=True)
    x = bench.random_inputs(tmp_path, seed=0)
    profile = bench.qemu_layers(tmp_path, x)
    ran = [layer for layer in profile.layers if layer.instructions is not None]
    exit_layer = [layer.name for layer in profile.layers].index(g.outputs[1].producer.name)
    assert len(ran) == exit_layer + 1 < len(profile.layers)
    assert all(layer.instructions is None for layer in profile.layers[exit_layer + 1:])
    assert sum(layer.instructions for layer in ran) + profile.entry_exit == profile.whole
    assert abs(profile.whole - bench.qemu_instructions(tmp_path, x)) < 80
