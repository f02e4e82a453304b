"""Calibration: run the float graph on sample inputs and record the range of every float value.

`load_samples(data, graph)` turns what a user gives into a list of input tuples, one tuple per
run of the model (each array exactly a graph input's shape and dtype):
- a `.npz` file or a dict: arrays named after the graph inputs, or `arr_0`, `arr_1`, ... in
  input order (what `np.savez(path, x)` writes);
- a numpy array (single-input models);
- an iterable of samples (a list of tuples, a generator, a torch DataLoader): each item is an
  array or tensor, or a tuple/list whose first entries are the inputs (labels after them are
  ignored).
An array may be one input exactly, a stack of inputs (leading axis = samples, `(S, *shape)`), or
several batches along the batch axis (`(S * N, *shape[1:])`, N the model's batch size). Float
data is cast to a float input's dtype; anything else (ints for a float input, a wrong shape,
NaN) is a `UsageError` naming the input.

`calibrate(graph, samples, observer)` runs the reference interpreter on each sample (a progress
bar counts the runs) and returns `{value name: (lo, hi)}` for the graph inputs and every float
node result. Observers turn the values a tensor took into a range; every range contains 0 so
that zero is exactly representable (zero padding, ReLU):
- `minmax`: the extremes seen.
- `moving_minmax`: a moving average of each run's extremes: their mean over the first 100 runs,
  then an exponential moving average with weight 0.01 for the new run (PyTorch's
  MovingAverageMinMaxObserver); robust to a few outlier inputs, it clips rare large values.
- `percentile`: the 0.01th and 99.99th percentiles (of a histogram), clipping rare outliers.
- `mse`: the clipping range that minimizes the expected squared error of 8-bit quantization
  (clipped values' error plus scale^2/12 rounding noise for the rest), each end of the observed
  range scaled by one of 100 factors in (0, 1], the two ends searched in turn.
- `entropy`: TensorRT's method: the threshold on |x| minimizing the KL divergence between the
  histogram clipped at it and that histogram merged into 128 levels (255 for non-negative data,
  which asymmetric int8 spreads over [0, t]).
The histogram observers keep 4096 bins over [-R, R], R a power of two that doubles (merging
neighbouring bins, which is exact) when larger values arrive. They leave out exact zeros: zero is
exact in every range, and the spike of zeros after a ReLU would otherwise dominate the KL
divergence and pull the entropy threshold far down.
"""
from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..ir.graph import Graph, Value

# ---------------------------------------------------------------- observers

def _with_zero(lo: float, hi: float) -> tuple[float, float]:
    return float(min(lo, 0.0)), float(max(hi, 0.0))


class MinMax:
    """The smallest and largest value seen."""

    def __init__(self):
        self.lo, self.hi = math.inf, -math.inf

    def update(self, x: np.ndarray):
        self.lo, self.hi = min(self.lo, float(x.min())), max(self.hi, float(x.max()))

    def range(self) -> tuple[float, float]:
        return _with_zero(self.lo, self.hi)


class MovingMinMax(MinMax):
    """Moving average of each update's extremes: the n-th update has weight max(1/n, `weight`)."""

    def __init__(self, weight: float = 0.01):
        super().__init__()
        self.weight, self.n = weight, 0

    def update(self, x: np.ndarray):
        self.n += 1
        w = max(1 / self.n, self.weight)
        self.lo = float(x.min()) if self.n == 1 else self.lo + w * (float(x.min()) - self.lo)
        self.hi = float(x.max()) if self.n == 1 else self.hi + w * (float(x.max()) - self.hi)


class Histogram(MinMax):
    """Counts of the values seen in BINS equal bins over [-bound, bound]; subclasses pick a range."""

    BINS = 4096

    def __init__(self):
        super().__init__()
        self.counts = np.zeros(self.BINS, np.int64)
        self.bound = 0.0

    def update(self, x: np.ndarray):
        super().update(x)
        top = max(-self.lo, self.hi)
        if top <= 0:
            return  # only zeros so far: nothing to bin yet (range() is (0, 0) then)
        if self.bound == 0:
            self.bound = 2.0 ** math.ceil(math.log2(top))
        while self.bound < top:  # double: pairs of bins merge into the middle half
            merged = self.counts.reshape(-1, 2).sum(1)
            self.counts[:] = 0
            self.counts[self.BINS // 4:3 * self.BINS // 4] = merged
            self.bound *= 2
        x = x[x != 0]  # exact zeros (half of a ReLU's outputs) are exact in any range; see the docstring
        idx = ((x / self.bound + 1) * (self.BINS / 2)).astype(np.int64)
        self.counts += np.bincount(np.clip(idx, 0, self.BINS - 1), minlength=self.BINS)

    @property
    def width(self) -> float:
        return 2 * self.bound / self.BINS

    def centers(self) -> np.ndarray:
        return (np.arange(self.BINS) + 0.5) * self.width - self.bound


class Percentile(Histogram):
    """The `low`th and `100 - low`th percentiles of the values (bin edges, within the extremes)."""

    def __init__(self, low: float = 0.01):
        super().__init__()
        self.low = low

    def range(self):
        if self.bound == 0:
            return super().range()
        cdf = np.cumsum(self.counts) / self.counts.sum()
        lo = np.searchsorted(cdf, self.low / 100) * self.width - self.bound
        hi = (np.searchsorted(cdf, 1 - self.low / 100) + 1) * self.width - self.bound
        return _with_zero(max(lo, self.lo), min(hi, self.hi))


class MSE(Histogram):
    """The range with the least expected quantization error (see the module docstring)."""

    def range(self):
        lo_seen, hi_seen = super().range()
        if self.bound == 0:
            return lo_seen, hi_seen
        factors = np.linspace(0.01, 1, 100)[:, None]
        c, n = self.centers(), self.counts
        lo, hi = lo_seen, hi_seen
        for _ in range(2):
            for end in ("hi", "lo"):
                los = lo_seen * factors if end == "lo" else np.full_like(factors, lo)
                his = hi_seen * factors if end == "hi" else np.full_like(factors, hi)
                clipped = np.clip(c, los, his)
                noise = ((clipped == c) * n).sum(1) * ((his - los)[:, 0] / 255) ** 2 / 12
                best = int(np.argmin(((c - clipped) ** 2 * n).sum(1) + noise))
                lo, hi = float(los[best, 0]), float(his[best, 0])
        return lo, hi


class Entropy(Histogram):
    """TensorRT's KL-divergence threshold on |x| (see the module docstring)."""

    def range(self):
        lo, hi = super().range()
        if self.bound == 0:
            return lo, hi
        half = self.BINS // 2
        absolute = self.counts[half:] + self.counts[:half][::-1]
        levels = 255 if lo >= 0 else 128
        last = int(np.nonzero(absolute)[0][-1]) + 1
        if last <= levels:
            return lo, hi
        best, best_kl = last, math.inf
        for i in [*range(levels, last, max(1, (last - levels) // 128)), last]:
            kl = _kl_clipped(absolute, i, levels)
            if kl < best_kl:
                best, best_kl = i, kl
        t = best * self.width
        return _with_zero(max(lo, -t), min(hi, t))


def _kl_clipped(hist: np.ndarray, i: int, levels: int) -> float:
    """KL(P || Q): P = hist[:i] with the outliers added to its last bin, Q = hist[:i] merged into
    `levels` groups and spread back evenly over each group's non-empty bins."""
    ref = hist[:i].astype(np.float64)
    p = ref.copy()
    p[-1] += hist[i:].sum()
    group = np.arange(i) * levels // i
    sums = np.bincount(group, ref, levels)
    filled = np.bincount(group, ref > 0, levels)
    q = np.where(ref > 0, sums[group] / np.maximum(filled[group], 1), 0.0)
    p, q = p / p.sum(), q / max(q.sum(), 1e-300)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / np.maximum(q[nz], 1e-12))))


OBSERVERS = {"minmax": MinMax, "moving_minmax": MovingMinMax, "percentile": Percentile, "mse": MSE,
             "entropy": Entropy}


def make_observer(name: str):
    if name not in OBSERVERS:
        raise UsageError(f"unknown observer '{name}'", f"known observers: {', '.join(OBSERVERS)}")
    return OBSERVERS[name]()


# ---------------------------------------------------------------- calibration data

def load_samples(data, graph: Graph) -> list[tuple[np.ndarray, ...]]:
    """Calibration data in any supported form -> validated input tuples (see the module docstring)."""
    inputs = graph.inputs
    if data is None:
        raise UsageError("quantization needs calibration data",
                         "pass calibration=... (CLI: --calibration FILE.npz) with a few hundred typical inputs")
    if isinstance(data, (str, Path)):
        data = _read_npz(Path(data))
    if isinstance(data, dict):
        data = _by_input(data, inputs)
    elif _is_array(data):
        if len(inputs) != 1:
            raise UsageError(f"a single array of calibration data, but the model has {len(inputs)} inputs",
                             "give an iterable of input tuples, or an .npz with one array per input")
        data = (data,)
    else:
        items = [x if isinstance(x, (tuple, list)) else (x,) for x in data]
        return [s for i, item in enumerate(items) for s in _split_item(item, inputs, f"calibration item {i}")]
    return _split_item(data, inputs, "calibration data")


def _is_array(x) -> bool:
    return isinstance(x, np.ndarray) or hasattr(x, "detach")


def _read_npz(path: Path) -> dict:
    if not path.is_file():
        raise UsageError(f"calibration file {path} does not exist", "give an .npz written by numpy.savez")
    if not zipfile.is_zipfile(path):
        raise UsageError(f"calibration file {path} is not an .npz file", "give an .npz written by numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as e:
        raise UsageError(f"cannot read calibration file {path}: {e}", "give an .npz written by numpy.savez") from None


def _by_input(arrays: dict, inputs: list[Value]) -> tuple:
    names = [v.name for v in inputs]
    for keys in (names, [f"arr_{i}" for i in range(len(inputs))]):
        if set(keys) <= set(arrays):
            return tuple(arrays[k] for k in keys)
    raise UsageError(f"calibration arrays are named {sorted(arrays)}; the model's inputs are {names}",
                     f"name the arrays {', '.join(names)} (np.savez(path, {names[0]}=...)), or save them "
                     f"unnamed in input order (np.savez(path, array0, ...))")


def _split_item(item, inputs: list[Value], where: str) -> list[tuple]:
    """One tuple of arrays (inputs first) -> the model runs it holds, each checked."""
    if len(item) < len(inputs):
        raise UsageError(f"{where} has {len(item)} array(s), the model takes {len(inputs)} input(s)",
                         "give one array per model input, in order")
    per_input = [_runs(a, v, where) for a, v in zip(item, inputs)]
    counts = {len(r) for r in per_input}
    if len(counts) > 1:
        raise UsageError(f"{where} holds different numbers of samples per input: "
                         f"{', '.join(f'%{v.name}: {len(r)}' for v, r in zip(inputs, per_input))}",
                         "give the same number of samples for every input")
    return list(zip(*per_input))


def _runs(a, v: Value, where: str) -> list[np.ndarray]:
    """Array `a` for graph input `v` -> one array per model run (one input, a stack, or batches)."""
    a = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
    shape, want = tuple(a.shape), v.shape
    quantized = a.dtype.kind == "f" and v.type.quant is not None  # float data for an int8 input: kept float
    if not quantized and (a.dtype.kind != v.dtype.np.kind or (a.dtype.kind == "b") != (v.dtype.np.kind == "b")):
        raise UsageError(f"{where}: input %{v.name} gets {a.dtype} data, the model takes {v.dtype.value}",
                         "convert (and normalize) the data the way the model's training did")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise UsageError(f"{where}: input %{v.name} has NaN or infinite values", "clean the calibration data")
    a = a if quantized else a.astype(v.dtype.np, copy=False)
    if shape == want:
        return [a]
    if shape[1:] == want:
        return list(a)
    if len(shape) == len(want) and shape[1:] == want[1:] and want and shape[0] % want[0] == 0 and shape[0]:
        return np.split(a, shape[0] // want[0])
    raise UsageError(f"{where}: input %{v.name} has shape {list(shape)}, the model takes {list(want)}",
                     f"give arrays of shape {list(want)}, (samples, {', '.join(map(str, want))}) or "
                     f"(samples x {want[0] if want else 1}, {', '.join(map(str, want[1:]))})")


# ---------------------------------------------------------------- running

def calibrate(graph: Graph, samples: list[tuple], observer: str = "minmax", *, quiet: bool = False,
              ) -> dict[str, tuple[float, float]]:
    """Runs float `graph` on every sample; returns the observed (lo, hi) of each float value.
    A graph with states runs the samples as one stream, in order, its states carried; a state's
    read and write get the union of their ranges (one set of quantization parameters for both)."""
    from rich import get_console
    from rich.progress import Progress

    from ..ir.interpreter import run

    make_observer(observer)  # an unknown name fails before any work
    if not samples:
        raise UsageError("the calibration data holds no samples", "give at least one input per model input")
    seen: dict[str, object] = {}
    with Progress(transient=True, disable=quiet or not get_console().is_terminal) as bar:
        task = bar.add_task("calibrating", total=len(samples))
        state = {s.read.name: s.init for s in graph.states}
        for sample in samples:
            trace = {v.name: a for v, a in zip(graph.inputs, sample)} | state
            run(graph, *sample, trace=trace, state=state)
            for name, a in trace.items():
                if a.dtype.kind == "f":
                    seen.setdefault(name, make_observer(observer)).update(a)
            bar.advance(task)
    ranges = {k: o.range() for k, o in seen.items()}
    for s in graph.states:
        if s.read.name in ranges and s.write.name in ranges:
            (a, b), (c, d) = ranges[s.read.name], ranges[s.write.name]
            ranges[s.read.name] = ranges[s.write.name] = (min(a, c), max(b, d))
    return ranges
