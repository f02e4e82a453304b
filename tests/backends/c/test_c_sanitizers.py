"""The generated C under clang's AddressSanitizer and UndefinedBehaviorSanitizer: the host runner of
float, int8, int16x8 and compressed-weight models, fed random, short, long and empty inputs, gives
no report (any report aborts the runner: -fno-sanitize-recover), reads only the bytes it needs,
rejects a short input with exit code 2 and a message, and computes the interpreter's bytes. The
arena and the weight blob are globals, so ASan's redzones around them catch a kernel that reads or
writes outside them."""
import subprocess

import numpy as np
import pytest

import mcuforge
from mcuforge import zoo
from mcuforge.ir.interpreter import run

SANITIZE = "-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CASES = {  # name -> compile options
    "tiny_cnn float": dict(model="tiny_cnn"),
    "ds_cnn int8": dict(model="ds_cnn", quantize="int8"),
    "resnet8 int16x8": dict(model="resnet8", quantize="int16x8"),
    "tiny_cnn int4 groups": dict(model="tiny_cnn", quantize="int8", weights="int4g32"),
    "mobilenet_v2 int8": dict(model="mobilenet_v2", quantize="int8"),
}


@pytest.fixture(scope="module", params=list(CASES))
def project(request, tmp_path_factory):
    options = dict(CASES[request.param])
    model, (x,) = zoo.get(options.pop("model"))
    if "quantize" in options:
        options["calibration"] = np.random.default_rng(0).standard_normal((4, *x.shape)).astype(np.float32)
    out = tmp_path_factory.mktemp("san")
    art = mcuforge.compile(model, (x,), emit=("c",), out_dir=out, **options)
    c_dir = art.files["c"]
    subprocess.run(["make", "-s", "host", "CC=clang", f"CFLAGS={SANITIZE}"], cwd=c_dir, check=True,
                   capture_output=True)
    assert b"__asan_report" in (c_dir / "model_host").read_bytes() and b"__ubsan" in (c_dir / "model_host").read_bytes()
    return art.graph, c_dir


def _run(c_dir, data: bytes):
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0", "UBSAN_OPTIONS": "print_stacktrace=1"}
    return subprocess.run([str(c_dir / "model_host")], input=data, capture_output=True, env=env, timeout=300)


def test_random_inputs_run_clean_and_match_the_interpreter(project):
    graph, c_dir = project
    v = graph.inputs[0]
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = (rng.integers(np.iinfo(v.dtype.np).min, np.iinfo(v.dtype.np).max + 1, v.shape).astype(v.dtype.np)
             if v.dtype.np != np.float32 else rng.standard_normal(v.shape).astype(np.float32))
        done = _run(c_dir, x.tobytes())
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        want = b"".join(o.tobytes() for o in run(graph, x))
        if v.dtype.np != np.float32:
            assert done.stdout == want  # integer models: bit-exact
        else:
            got = np.frombuffer(done.stdout, np.float32)
            np.testing.assert_allclose(got, np.frombuffer(want, np.float32), rtol=1e-4, atol=1e-4)


def test_short_empty_and_long_inputs(project):
    graph, c_dir = project
    size = graph.inputs[0].type.nbytes
    for data in (b"", bytes(size - 1), bytes(size // 2)):
        done = _run(c_dir, data)
        assert done.returncode == 2 and b"expected" in done.stderr and b"Sanitizer" not in done.stderr
    done = _run(c_dir, bytes(size) + b"\x7f" * 1000)  # extra bytes are not read
    assert done.returncode == 0 and b"Sanitizer" not in done.stderr
    assert len(done.stdout) == sum(v.type.nbytes for v in graph.outputs)
