"""Calibration: every data form gives the same samples, bad data is refused naming the input, the
observers' ranges match numpy/brute-force oracles, and calibrated ranges match torch's tensors."""
import numpy as np
import pytest
import torch

from mcuforge.analysis.calibrate import OBSERVERS, calibrate, load_samples
from mcuforge.errors import UsageError
from mcuforge.ir.graph import Graph
from mcuforge.ir.types import DType, TensorType

rng = np.random.default_rng(0)


def graph(*shapes, dtype=DType.f32):
    g = Graph("calib")
    xs = [g.add_input(f"in{i}", TensorType(s, dtype)) for i, s in enumerate(shapes)]
    g.outputs = [g.op("relu", [x]) for x in xs]
    return g


def same(a, b):
    assert len(a) == len(b)
    for sa, sb in zip(a, b):
        assert all(x.dtype == np.float32 and np.array_equal(x, y) for x, y in zip(sa, sb, strict=True))


def test_every_form_gives_the_same_samples(tmp_path):
    g = graph((2, 3), (2, 1))
    a, b = rng.standard_normal((6, 3)), rng.standard_normal((6, 1))  # 6 rows = 3 runs of batch 2
    want = [(a[i:i + 2].astype(np.float32), b[i:i + 2].astype(np.float32)) for i in (0, 2, 4)]
    np.savez(tmp_path / "named.npz", in1=b, in0=a, labels=np.zeros(6))
    np.savez(tmp_path / "plain.npz", a, b)
    same(load_samples(tmp_path / "named.npz", g), want)
    same(load_samples(str(tmp_path / "plain.npz"), g), want)
    same(load_samples({"in0": a.reshape(3, 2, 3), "in1": b.reshape(3, 2, 1)}, g), want)  # (samples, *shape)
    same(load_samples([(x, y, "label") for x, y in want], g), want)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(a), torch.tensor(b),
                                                                        torch.zeros(6)), batch_size=4)
    same(load_samples(loader, g), want)  # batches of 4 and 2 rows, labels ignored
    one = graph((1, 3))
    same(load_samples(a, one), [(r[None].astype(np.float32),) for r in a])
    same(load_samples((torch.tensor(r[None]) for r in a), one), [(r[None].astype(np.float32),) for r in a])


@pytest.mark.parametrize("data, message", [
    (lambda p: [np.zeros((1, 4))], "input %in0 has shape [1, 4], the model takes [1, 3]"),
    (lambda p: np.zeros((5, 2, 3)), "input %in0 has shape [5, 2, 3]"),
    (lambda p: [np.zeros((1, 3), np.int64)], "input %in0 gets int64 data, the model takes f32"),
    (lambda p: [np.full((1, 3), np.nan)], "input %in0 has NaN"),
    (lambda p: [], "holds no samples"),
    (lambda p: None, "needs calibration data"),
    (lambda p: p / "missing.npz", "does not exist"),
    (lambda p: (np.savez(p / "x.npz", data=np.zeros((2, 1, 3))), p / "x.npz")[1], "the model's inputs are ['in0']"),
    (lambda p: (p.joinpath("bad.npz").write_text("nope"), p / "bad.npz")[1], "is not an .npz file"),
])
def test_bad_data_is_refused_naming_the_input(tmp_path, data, message):
    with pytest.raises(UsageError, match=None) as e:
        calibrate(graph((1, 3)), load_samples(data(tmp_path), graph((1, 3))))
    assert message in e.value.message and e.value.hint


def test_multi_input_mismatches_are_refused():
    g = graph((1, 3), (1, 2))
    with pytest.raises(UsageError, match="different numbers of samples"):
        load_samples({"in0": np.zeros((4, 1, 3)), "in1": np.zeros((3, 1, 2))}, g)
    with pytest.raises(UsageError, match="model has 2 inputs"):
        load_samples(np.zeros((4, 1, 3)), g)
    with pytest.raises(UsageError, match="has 1 array"):
        load_samples([(np.zeros((1, 3)),)], g)


def test_unknown_observer_lists_the_known_ones():
    with pytest.raises(UsageError) as e:
        calibrate(graph((1, 3)), [(np.zeros((1, 3), np.float32),)], "kl")
    assert "entropy" in e.value.hint


def feed(name, data, chunks=10):
    o = OBSERVERS[name]()
    for c in np.array_split(data.astype(np.float32), chunks):
        o.update(c)
    return o.range()


def test_minmax_and_moving_minmax_against_numpy():
    data = rng.standard_normal(1000) + 3  # all positive or nearly: the range must still hold 0
    assert feed("minmax", data) == (min(0.0, float(data.astype(np.float32).min())), float(data.astype(np.float32).max()))
    chunks = np.array_split(data.astype(np.float32), 150)
    lo, hi = np.mean([c.min() for c in chunks[:100]]), np.mean([c.max() for c in chunks[:100]])
    for c in chunks[100:]:
        lo, hi = lo + 0.01 * (c.min() - lo), hi + 0.01 * (c.max() - hi)
    np.testing.assert_allclose(feed("moving_minmax", data, chunks=150), (min(lo, 0), hi), rtol=1e-5)
    assert feed("minmax", np.zeros(5), chunks=1) == (0.0, 0.0)


def test_percentile_matches_numpy_within_a_bin_while_the_histogram_grows():
    data = np.concatenate([rng.standard_normal(20000) * 0.1, rng.standard_normal(20000) * 3, [40.0]])  # bound doubles
    lo, hi = feed("percentile", data, chunks=2)
    width = 2 * 64 / 4096
    assert abs(lo - np.percentile(data, 0.01)) <= 2 * width and abs(hi - np.percentile(data, 99.99)) <= 2 * width


def quant_mse(x, lo, hi):
    scale = (hi - lo) / 255
    zp = np.round(-128 - lo / scale)
    q = np.clip(np.round(x / scale) + zp, -128, 127)
    return float(np.mean(((q - zp) * scale - x) ** 2))


def test_mse_range_is_near_the_brute_force_optimum():
    x = np.concatenate([rng.standard_normal(300000), [40.0]]).astype(np.float32)  # one far outlier
    lo, hi = feed("mse", x)
    grid = [(a * x.min(), b * x.max()) for a in (0.7, 0.85, 1.0) for b in np.linspace(0.05, 1, 60)]
    best = min(quant_mse(x, *r) for r in grid)
    assert quant_mse(x, lo, hi) <= 1.05 * best < 0.75 * quant_mse(x, x.min(), x.max())


def test_entropy_clips_rare_outliers_and_keeps_bounded_data():
    data = np.concatenate([np.abs(rng.standard_normal(50000)), rng.uniform(10, 30, 25)]).astype(np.float32)
    lo, hi = feed("entropy", data)
    bulk = data[data < hi]
    assert lo == 0 and hi < 0.6 * data.max() and quant_mse(bulk, lo, hi) < 0.5 * quant_mse(bulk, 0, data.max())
    lo, hi = feed("entropy", rng.uniform(-1, 1, 50000))
    assert lo <= -0.9 and hi >= 0.9


@pytest.mark.parametrize("observer", OBSERVERS)
def test_calibrated_ranges_cover_torch_tensors(observer):
    """Every value's range comes from the interpreter's run; minmax equals torch's extremes."""
    import mcuforge
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(64, 3))
    g = mcuforge.trace(model, (torch.randn(1, 2, 6, 6),))
    xs = rng.standard_normal((8, 1, 2, 6, 6)).astype(np.float32)
    ranges = calibrate(g, load_samples(xs, g), observer, quiet=True)
    with torch.no_grad():
        t = torch.from_numpy(xs.reshape(8, 2, 6, 6))
        conv = model[0](t)
        out = model(t)
    by_name = {n.op: n.output.name for n in g.nodes}
    for name, ref in [(g.inputs[0].name, t), (by_name["conv2d"], conv), (by_name["linear"], out)]:
        lo, hi = ranges[name]
        assert lo <= 0 <= hi
        if observer == "minmax":
            np.testing.assert_allclose((lo, hi), (min(ref.min().item(), 0), max(ref.max().item(), 0)), rtol=1e-5)
        else:  # within the extremes, and not collapsed
            assert ref.min().item() - 1e-5 <= lo and hi <= ref.max().item() + 1e-5 and hi - lo > 0.3 * (ref.max() - ref.min())
