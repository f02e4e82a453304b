"""int8 .tflite size and TFLite Micro arena per bundled model: ours against Google's converter.

    python benchmarks/tflite_size.py            # every zoo model
    python benchmarks/tflite_size.py --quick    # two small models (what the tests run)
    python benchmarks/tflite_size.py --converter-python /tmp/lt/bin/python

Each zoo model is quantized to int8 (int8 inputs and outputs) by the default pipeline, calibrated
on its example input and two standard-normal samples, and written as .tflite. Columns: our file's
bytes; TFLite Micro's arena (its recording allocator's total: planned tensors, scratch and
persistent structs) for that file with TFLite Micro's own planner and with our offline plan;
then the same torch model converted by litert-torch (PT2E int8 post-training quantization,
per-channel symmetric weights, calibrated on the same three samples): its file's bytes and its
TFLite Micro arena. litert-torch brings its own dependency set, so it runs in the Python named by
--converter-python (default $LITERT_TORCH_PYTHON, else this one): a separate virtual
environment, e.g. `python -m venv /tmp/lt --system-site-packages && /tmp/lt/bin/pip install
litert-torch`. When it is missing or fails, the table says why instead of giving numbers.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

QUICK = ["tiny_cnn", "resnet8"]
COLUMNS = ["model", "ours B", "TFLM own plan", "TFLM our plan", "converter B", "converter TFLM", "ours/conv B",
           "ours/conv arena"]


def calibration(inputs) -> list[list[np.ndarray]]:
    """The example input and two standard-normal samples of its shape."""
    rng, x = np.random.default_rng(0), inputs[0].numpy()
    return [[x], *([rng.standard_normal(x.shape).astype(np.float32)] for _ in range(2))]


def ours(name: str) -> list:
    """[file bytes, TFLite Micro arena with its own planner, with our offline plan]."""
    import mcuforge
    from mcuforge import zoo
    from mcuforge.backends.tflite.emit import to_tflite
    from mcuforge.backends.tflite.runtime import tflm_arena_bytes
    model, inputs = zoo.get(name)
    art = mcuforge.compile(model, inputs, quantize="int8", calibration=calibration(inputs), emit=())
    planned = to_tflite(art.graph, art.ctx.plan)
    return [len(planned), tflm_arena_bytes(to_tflite(art.graph, offline_plan=False)), tflm_arena_bytes(planned)]


def convert(out_dir: str, names: list[str]) -> None:
    """In the converter's Python: each model through litert-torch's int8 PT2E flow, written to
    out_dir/NAME.tflite, or its failure to out_dir/NAME.error."""
    import litert_torch
    import torch
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    from mcuforge import zoo
    for name in names:
        try:
            model, inputs = zoo.get(name)
            quantizer = pq.PT2EQuantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True))
            m = quantize_pt2e.prepare_pt2e(torch.export.export(model.eval(), tuple(inputs)).module(), quantizer)
            for sample in calibration(inputs):
                m(*(torch.from_numpy(a) for a in sample))
            m = quantize_pt2e.convert_pt2e(m, fold_quantize=False)
            data = litert_torch.convert(m, tuple(inputs), quant_config=QuantConfig(pt2e_quantizer=quantizer))
            Path(out_dir, f"{name}.tflite").write_bytes(data.model_content())
        except Exception as e:  # noqa: BLE001 - reported in the table, the other models go on
            Path(out_dir, f"{name}.error").write_text(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")


def converted(python: str, names: list[str], out_dir: str) -> str | None:
    """Run `convert` in `python`; None, or why the converter is not available at all."""
    code = "import sys; sys.path.insert(0, sys.argv[1]); import tflite_size; tflite_size.convert(sys.argv[2], sys.argv[3:])"
    try:
        done = subprocess.run([python, "-c", code, str(Path(__file__).parent), out_dir, *names],
                              capture_output=True, text=True, timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{python}: {e}"
    if done.returncode:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        return f"{python}: {lines[-1] if lines else f'exit code {done.returncode}'}"
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    ap.add_argument("--converter-python", default=os.environ.get("LITERT_TORCH_PYTHON", sys.executable),
                    help="a Python with litert-torch installed (default: $LITERT_TORCH_PYTHON, else this one)")
    args = ap.parse_args(argv)
    from mcuforge import zoo
    from mcuforge.backends.tflite.runtime import tflm_arena_bytes
    names = QUICK if args.quick else zoo.names()

    rows = [COLUMNS]
    with tempfile.TemporaryDirectory() as tmp:
        missing = converted(args.converter_python, names, tmp)
        for name in names:
            row = [name, *ours(name)]
            path = Path(tmp, f"{name}.tflite")
            if path.exists():
                data = path.read_bytes()
                theirs = [len(data), tflm_arena_bytes(data)]
                row += [*theirs, f"{row[1] / theirs[0]:.3f}", f"{row[3] / theirs[1]:.3f}"]
            else:
                row += ["n/a"] * 4
            rows.append(row)
        failed = {p.stem: p.read_text() for p in Path(tmp).glob("*.error")}
    widths = [max(len(f"{r[i]:,}" if isinstance(r[i], int) else str(r[i])) for r in rows) for i in range(len(COLUMNS))]
    for r in rows:
        cells = [f"{c:,}" if isinstance(c, int) else str(c) for c in r]
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))
    print()
    compared = [r for r in rows[1:] if isinstance(r[4], int)]
    if compared:
        print(f"against the converter: our file smaller on {sum(r[1] < r[4] for r in compared)}/{len(compared)} models, "
              f"TFLite Micro's arena with our plan no larger on {sum(r[3] <= r[5] for r in compared)}/{len(compared)}")
    if missing:
        print(f"converter not available: {missing}")
    for name, why in failed.items():
        print(f"converter failed on {name}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
