"""Building and running generated C in the tests: the host runner with gcc and clang, the
Cortex-M ELF under QEMU, and the comparisons with the reference interpreter (and torch)."""
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from mcuforge.backends.c.emit import emit_c
from mcuforge.ir.interpreter import run

CC = ("gcc", "clang")


def host_make(directory, cc):
    r = subprocess.run(["make", "-s", "host", f"CC={cc}"], cwd=directory, capture_output=True, text=True)
    assert r.returncode == 0, f"{cc} build in {directory} failed:\n{r.stdout}\n{r.stderr}"
    return directory / "model_host"


def build_and_check(directory, graph, model=None, seed=0):
    """Emit `graph`, build it with gcc and clang (in parallel), run both on random inputs and
    compare with the interpreter (int8: exactly; float: 1e-4 of the output's range) and torch."""
    emit_c(graph, directory / "gcc")
    shutil.copytree(directory / "gcc", directory / "clang", copy_function=os.link)  # the same sources
    with ThreadPoolExecutor(2) as pool:
        binaries = list(pool.map(host_make, [directory / cc for cc in CC], CC))
    rng = np.random.default_rng(seed)
    xs = [rng.integers(-128, 128, v.shape).astype(np.int8) if v.dtype.value == "i8"
          else rng.standard_normal(v.shape).astype(v.dtype.np) for v in graph.inputs]
    refs = [run(graph, *xs)]
    if model is not None:
        with torch.no_grad():
            ref = model(*(torch.from_numpy(x) for x in xs))
        refs.append([t.numpy() for t in (ref if isinstance(ref, tuple) else (ref,))])
    for binary in binaries:
        out = subprocess.run([binary], input=b"".join(x.tobytes() for x in xs), capture_output=True,
                             check=True).stdout
        assert len(out) == sum(w.nbytes for w in refs[0]), binary
        got, at = [], 0
        for w in refs[0]:
            got.append(np.frombuffer(out[at:at + w.nbytes], w.dtype).reshape(w.shape))
            at += w.nbytes
        for ref in refs:
            for g, w in zip(got, ref):
                if w.dtype == np.float32:
                    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * float(np.abs(w).max()), err_msg=str(binary))
                else:
                    np.testing.assert_array_equal(g, w, err_msg=str(binary))


def calibration(shape, n=4, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


def qemu_make(directory, args):
    r = subprocess.run(["make", "-s", "cortex-m", *args], cwd=directory, capture_output=True, text=True)
    assert r.returncode == 0, f"cortex-m build in {directory} failed:\n{r.stdout}\n{r.stderr}"
    return directory


def qemu_run(directory, inputs, board) -> tuple[bytes, str]:
    (directory / "input.bin").write_bytes(b"".join(x.tobytes() for x in inputs))
    r = subprocess.run(["make", "-s", "qemu", f"TARGET={board}"], cwd=directory, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, f"QEMU run failed:\n{r.stdout}\n{r.stderr}"
    return (directory / "output.bin").read_bytes(), r.stdout


def _make_goal(directory, goal):
    r = subprocess.run(["make", "-s", goal, "CC=gcc"], cwd=directory, capture_output=True, text=True)
    assert r.returncode == 0, f"make {goal} in {directory} failed:\n{r.stdout}\n{r.stderr}"


def random_inputs(graph, seed=0) -> list[np.ndarray]:
    """Inputs covering each integer type's range, standard normal floats."""
    rng = np.random.default_rng(seed)
    return [rng.integers(np.iinfo(v.dtype.np).min, np.iinfo(v.dtype.np).max + 1, v.shape).astype(v.dtype.np)
            if v.dtype.value != "f32" else rng.standard_normal(v.shape).astype(np.float32) for v in graph.inputs]


def host_and_m4(directory, graph) -> tuple[list[np.ndarray], bytes, bytes, str]:
    """Emit `graph` once, build it for the host and the M4 in parallel, run both on random inputs:
    (inputs, host output bytes, QEMU output bytes, QEMU's log)."""
    emit_c(graph, directory)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(_make_goal, [directory] * 2, ["host", "cortex-m"]))
    xs = random_inputs(graph)
    host = subprocess.run([directory / "model_host"], input=b"".join(x.tobytes() for x in xs), capture_output=True,
                          check=True).stdout
    m4, log = qemu_run(directory, xs, "mps2-an386")
    return xs, host, m4, log


def check_host(directory, graph, compilers=CC, seed=0):
    """Emit `graph`, build it with `compilers`, run them on random inputs: their output bytes
    must be the interpreter's."""
    emit_c(graph, directory / "gcc")
    for cc in compilers[1:]:
        shutil.copytree(directory / "gcc", directory / cc, copy_function=os.link)
    with ThreadPoolExecutor(2) as pool:
        binaries = list(pool.map(host_make, [directory / cc for cc in compilers], compilers))
    xs = random_inputs(graph, seed)
    want = b"".join(w.tobytes() for w in run(graph, *xs))
    for binary in binaries:
        out = subprocess.run([binary], input=b"".join(x.tobytes() for x in xs), capture_output=True, check=True).stdout
        assert out == want, binary


def host_run(directory, graph, inputs, cc="gcc") -> list[np.ndarray]:
    """Emit `graph` into `directory`, build it for the host with `cc`, run it on `inputs`: its outputs."""
    emit_c(graph, directory)
    out = subprocess.run([host_make(directory, cc)], input=b"".join(np.ascontiguousarray(x).tobytes() for x in inputs),
                         capture_output=True, check=True).stdout
    got, at = [], 0
    for v in graph.outputs:
        n = v.type.numel * v.dtype.itemsize
        got.append(np.frombuffer(out[at:at + n], v.dtype.np).reshape(v.shape))
        at += n
    assert at == len(out), f"{len(out)} bytes of output, the graph's outputs have {at}"
    return got
