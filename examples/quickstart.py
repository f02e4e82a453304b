"""Quick start: compile the MLPerf Tiny keyword-spotting DS-CNN to ONNX and check it.

    python examples/quickstart.py [OUT_DIR]

Traces the model, runs the default float pipeline (batch norms folded into convolutions,
ReLUs fused), writes model.onnx and report.md, and compares the reference interpreter and
onnxruntime with torch.
"""
import sys

import numpy as np
import onnxruntime as ort
import torch

import mcuforge
from mcuforge import zoo

out_dir = sys.argv[1] if len(sys.argv) > 1 else "build/quickstart"
model, (x,) = zoo.get("ds_cnn")
art = mcuforge.compile(model, (x,), out_dir=out_dir)
print(art.report)
print("ops after the pipeline:", art.graph.count())

with torch.no_grad():
    expected = model(x).numpy()
(ours,) = art.run(x)
session = ort.InferenceSession(str(art.files["onnx"]), providers=["CPUExecutionProvider"])
(theirs,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
print(f"max |interpreter - torch| = {np.abs(ours - expected).max():.2e}")
print(f"max |onnxruntime - torch| = {np.abs(theirs - expected).max():.2e}")
assert np.allclose(ours, expected, rtol=1e-4, atol=1e-5) and np.allclose(theirs, expected, rtol=1e-4, atol=1e-5)
print("wrote", ", ".join(str(p) for p in art.files.values()))
