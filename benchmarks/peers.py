"""mcuforge against ExecuTorch and TVM on the host, float32 models, measured in the same run.

    python benchmarks/peers.py [--models ds_cnn,resnet8] [--executorch PYTHON] [--tvm PYTHON]

ExecuTorch and TVM pin their own dependencies, so each lives in its own virtual environment, never
the main one (see docs/comparison.md for how they were installed); pass each one's python. A
missing one prints "-" in its columns and says so. Per model:

- mcuforge: the default float pipeline, C emitted: arena bytes, flash of the model's objects on a
  Cortex-M4 (arm-none-eabi-size), and host latency (`backends/c/bench.py`: the generated C built
  with `make host`, gcc -O2; median of samples, each the mean of many inferences).
- ExecuTorch: torch.export, to_edge, to_executorch without a delegate (so its CPU kernels, as in
  the pip wheel's runtime): .pte bytes, the memory its planner reserves (the program's
  non-constant buffers), and the median of samples of `Method.execute` called from Python.
- TVM (Relax): mcuforge's float ONNX of the model (torch's own ONNX export of ds_cnn has dynamic
  Pad nodes that Relax's ONNX frontend rejects) through `relax.frontend.onnx`, `tvm.compile` for
  "llvm" without tuning: the median of its VM `time_evaluator` samples.
Latency is wall time on a shared machine: compare ratios from one run, not across runs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import mcuforge
from mcuforge.backends.c import bench

EXECUTORCH = """
import json, sys, time, torch
from executorch.exir import to_edge
from executorch.runtime import Runtime
from mcuforge import zoo
model, (x,) = zoo.get(sys.argv[1])
program = to_edge(torch.export.export(model.eval(), (x,))).to_executorch()
path = sys.argv[2] + "/model.pte"
open(path, "wb").write(program.buffer)
planned = sum(sum(p.non_const_buffer_sizes) for p in program.executorch_program.execution_plan)
method = Runtime.get().load_program(path).load_method("forward")
def sample(k):
    t = time.perf_counter()
    for _ in range(k):
        method.execute([x])
    return (time.perf_counter() - t) / k
k = max(2, round(0.02 / sample(5)))
print(json.dumps(dict(pte=len(program.buffer), planned=planned, seconds=sorted(sample(k) for _ in range(10)))))
"""

TVM = """
import json, sys, numpy as np, onnx, tvm
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx
m = onnx.load(sys.argv[1])
shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in m.graph.input}
vm = relax.VirtualMachine(tvm.compile(from_onnx(m, shape_dict=shapes), target="llvm"), tvm.cpu())
xs = [tvm.runtime.tensor(np.random.default_rng(0).standard_normal(s).astype("float32")) for s in shapes.values()]
once = vm.time_evaluator("main", tvm.cpu(), number=5)(*xs).mean
r = vm.time_evaluator("main", tvm.cpu(), number=max(2, round(0.02 / once)), repeat=10)(*xs)
print(json.dumps(dict(seconds=sorted(r.results))))
"""


def peer(python: str | None, code: str, *args: str) -> dict | None:
    """Run `code` with the peer's interpreter; its JSON line, or None (with the reason on stderr)."""
    if not python or not Path(python).exists():
        print(f"not measured: no interpreter at '{python}' (see --help)", file=sys.stderr)
        return None
    r = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        print(f"{python} failed on {args[0]}:\n{r.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="ds_cnn,resnet8")
    ap.add_argument("--executorch", default="/tmp/etv/bin/python", help="python of ExecuTorch's venv")
    ap.add_argument("--tvm", default="/tmp/peersv/bin/python", help="python of TVM's venv")
    args = ap.parse_args()
    us = lambda s: f"{statistics.median(s) * 1e6:,.0f}" if s else "-"
    cols = ["model", "arena B", "flash M4 B", "ours µs", ".pte B", "ET planned B", "ET µs", "TVM µs"]
    print(f"{cols[0]:<14}" + "".join(f"{c:>14}" for c in cols[1:]))
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory() as out:
            art = mcuforge.compile(f"zoo:{name}", emit=("c", "onnx"), out_dir=out)
            ours = bench.host_latency(art.files["c"], bench.random_inputs(art.files["c"]), runs=10)
            et = peer(args.executorch, EXECUTORCH, name, out) or {}
            tvm = peer(args.tvm, TVM, str(art.files["onnx"])) or {}
        mcu = art.report.mcu
        cells = [f"{art.plan.arena_bytes:,}", f"{mcu.flash:,}" if mcu.core else "-", us(ours),
                 f"{et['pte']:,}" if et else "-", f"{et['planned']:,}" if et else "-", us(et.get("seconds")),
                 us(tvm.get("seconds"))]
        print(f"{name:<14}" + "".join(f"{c:>14}" for c in cells), flush=True)
    print("float32, batch 1, host x86_64; ours: generated C, gcc -O2; ET: ExecuTorch without delegate, from Python; "
          "TVM: Relax, llvm, untuned")


if __name__ == "__main__":
    main()
