"""Compile time per bundled model, and for synthetic chains of 1,000 and 10,000 layers.

    python benchmarks/compile_time.py            # full table
    python benchmarks/compile_time.py --quick    # small chains only (what the tests run)

Each row times tracing (torch.fx -> IR) and the default float pipeline separately, best of
`--repeat` runs. The chain rows end with the growth check: going from n to 10n layers must cost
at most 10n log(10n) / (n log n) times as much (O(n log n)), with 1.5x slack for timer noise.
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import torch

import mcuforge
from mcuforge import zoo
from mcuforge.passes.manager import PassManager
from mcuforge.passes.pipelines import FLOAT


def chain(n_layers: int, width: int = 8) -> torch.nn.Sequential:
    """Linear -> BatchNorm1d -> ReLU repeated, `n_layers` modules in all."""
    make = [lambda: torch.nn.Linear(width, width), lambda: torch.nn.BatchNorm1d(width), torch.nn.ReLU]
    return torch.nn.Sequential(*(make[i % 3]() for i in range(n_layers))).eval()


def measure(model, inputs, repeat: int) -> tuple[float, float, int, int]:
    best_trace = best_passes = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        g = mcuforge.trace(model, inputs)
        t1 = time.perf_counter()
        nodes = len(g)
        PassManager(FLOAT).run(g)
        t2 = time.perf_counter()
        best_trace, best_passes = min(best_trace, t1 - t0), min(best_passes, t2 - t1)
    return best_trace, best_passes, nodes, len(g)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="chains of 100 and 1,000 layers, no zoo models")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    rows = []
    if not args.quick:
        for name in zoo.names():
            model, inputs = zoo.get(name)
            rows.append((name, *measure(model, inputs, args.repeat)))
    sizes = (100, 1000) if args.quick else (1000, 10000)
    chain_rows = []
    for n in sizes:
        r = measure(chain(n), (torch.randn(2, 8),), 1 if n >= 10000 else args.repeat)
        chain_rows.append((n, r))
        rows.append((f"chain-{n}", *r))

    print(f"{'model':<16} {'trace s':>9} {'passes s':>9} {'nodes in':>9} {'nodes out':>9} {'us/node':>8}")
    for name, tt, tp, n_in, n_out in rows:
        print(f"{name:<16} {tt:>9.3f} {tp:>9.3f} {n_in:>9} {n_out:>9} {1e6 * (tt + tp) / n_in:>8.1f}")

    (n1, r1), (n2, r2) = chain_rows
    t1, t2 = r1[0] + r1[1], r2[0] + r2[1]
    allowed = 1.5 * (n2 * math.log(n2)) / (n1 * math.log(n1))
    ok = t2 / t1 <= allowed
    print(f"\ngrowth {n1} -> {n2} layers: x{t2 / t1:.1f} (O(n log n) allows x{allowed:.1f}): {'ok' if ok else 'TOO SLOW'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
