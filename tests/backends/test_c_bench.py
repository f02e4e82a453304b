"""backends/c/bench.py and the host runner's batch mode: seeded inputs as the header declares
them; `model_host -b` runs sample after sample, each output equal to the reference interpreter's
(int8: bit for bit); an incomplete last sample is an error; latency samples are positive."""
import subprocess

import numpy as np

import mcuforge
from mcuforge import zoo
from mcuforge.backends.c import bench
from mcuforge.ir.interpreter import run


def test_batch_mode_matches_interpreter(tmp_path):
    model, (x,) = zoo.get("ds_cnn")
    calib = np.random.default_rng(0).standard_normal((4, *x.shape)).astype(np.float32)
    art = mcuforge.compile(model, (x,), quantize="int8", calibration=calib, emit=("c",), out_dir=tmp_path)
    c = art.files["c"]
    (x0,) = bench.random_inputs(c, seed=0)
    assert x0.dtype == np.int8 and x0.shape == tuple(art.graph.inputs[0].shape)
    samples = np.stack([bench.random_inputs(c, seed=s)[0] for s in range(3)])
    bench.make(c, "host")
    out = subprocess.run([str(c / "model_host"), "-b"], input=samples.tobytes(), capture_output=True, check=True).stdout
    want = np.stack([run(art.graph, s)[0] for s in samples])
    assert out == want.tobytes()
    r = subprocess.run([str(c / "model_host"), "-b"], input=samples.tobytes()[:-1], capture_output=True)
    assert r.returncode == 2 and b"incomplete" in r.stderr
    seconds = bench.host_latency(c, [x0], runs=3)
    assert len(seconds) == 3 and all(0 < s < 1 for s in seconds)
