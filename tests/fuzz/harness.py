"""The fuzz harness: seed models the project emits itself, structure-aware and byte-level mutators,
and a worker subprocess that loads each input and compiles some of them, classifying the outcome.

Seeds are small torch models compiled by `mcuforge.compile` to .onnx and .tflite, float, int8,
int16x8 and with compressed (pow2, int4) weights. A mutant is made by parsing a seed into its
schema objects (onnx.ModelProto; LiteRT's ModelT object API for TFLite), changing one to three
fields a loader reads (dims, dtypes, initializer or buffer data, node or operator inputs and
outputs, attributes and options, opset, quantization arrays, opcode and buffer indices) and
serializing it again, or by changing the bytes (bit flips, truncation, insertion, deletion). Every
mutant is a pure function of (seed, number), so a failure is reproduced from its number.

Each input goes through `load_onnx` / `load_tflite` and, for a subset, through the CLI's
`mcuforge compile FILE --emit c -o DIR`, in a worker process with a bounded address space and a
timeout per input (a crash or a hang costs the worker, which is restarted). Outcome classes:
`ok`, `typed` (an `mcuforge.errors.Error` with an exit code other than 1), and the bugs:
`untyped` (any other exception), `internal` (a typed error or CLI exit code 1, reserved for our
bugs), `crash` (the worker died), `hang` (past the timeout), `partial` (an output directory or a
temporary directory beside it left behind by a failed compile). A bug's signature is its class, the
exception type, the message with numbers blanked and the innermost mcuforge frame.
"""
from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

BUGS = ("untyped", "internal", "crash", "hang", "partial")
OUTCOMES = ("ok", "typed", *BUGS)
SRC = Path(__file__).resolve().parents[2] / "src"


# ---------------------------------------------------------------- seeds

def make_seeds(directory: Path) -> list[Path]:
    """Compile two small torch models to .onnx and .tflite under several schemes into `directory`
    (once: existing seeds are reused); returns the seed files."""
    directory = Path(directory)
    if directory.is_dir() and any(directory.iterdir()):
        return sorted(p for p in directory.iterdir() if p.suffix in (".onnx", ".tflite"))
    import torch

    import mcuforge

    class ConvNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.fc = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.Linear(64, 5)

        def forward(self, x):
            y = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
            return torch.softmax(self.fc(y.flatten(1)), -1)

    class DwNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dw, self.pw = torch.nn.Conv2d(4, 4, 3, padding=1, groups=4), torch.nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = torch.nn.functional.hardswish(self.dw(x)) + x
            y = torch.nn.functional.avg_pool2d(torch.sigmoid(self.pw(y)), 2)
            return torch.cat([y, torch.tanh(y)], 1).mean((2, 3))

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    schemes = {"float": {}, "int8": {"quantize": "int8"}, "int16x8": {"quantize": "int16x8"},
               "pow2": {"quantize": "int8", "weights": "pow2"}, "int4": {"quantize": "int8", "weights": "int4g32"}}
    with tempfile.TemporaryDirectory() as tmp:
        for model, shape in ((ConvNet(), (1, 3, 8, 8)), (DwNet(), (1, 4, 8, 8))):
            name = type(model).__name__.lower()
            calibration = rng.standard_normal((4, *shape)).astype(np.float32)
            for scheme, options in schemes.items():
                if "quantize" in options:
                    options = {**options, "calibration": calibration}
                art = mcuforge.compile(model.eval(), (torch.randn(*shape),), emit=("onnx", "tflite"),
                                       out_dir=Path(tmp) / "out", **options)
                directory.mkdir(parents=True, exist_ok=True)
                for kind in ("onnx", "tflite"):
                    (directory / f"{name}_{scheme}.{kind}").write_bytes(art.files[kind].read_bytes())
    return make_seeds(directory)


# ---------------------------------------------------------------- mutators

def _number(r: random.Random, kind: str):
    """A value likely to break an integer or float field: edges, signs, huge and small ones."""
    if kind == "float":
        return r.choice([0.0, -1.0, 1e-30, 2.7e7, 1e38, float("inf"), float("-inf"), float("nan"), r.uniform(-10, 10)])
    return r.choice([0, 1, -1, 2, 3, 7, 255, -128, 2 ** 15, 2 ** 31 - 1, -2 ** 31, 2 ** 40, r.randrange(-8, 64)])


def mutate_bytes(data: bytes, r: random.Random) -> bytes:
    """Bit flips, random bytes, truncation, insertion, deletion or a duplicated chunk."""
    b = bytearray(data)
    for _ in range(r.randint(1, 3)):
        if not b:
            break
        i = r.randrange(len(b))
        how = r.randrange(6)
        if how == 0:
            b[i] ^= 1 << r.randrange(8)
        elif how == 1:
            b[i] = r.randrange(256)
        elif how == 2:
            del b[r.randrange(len(b) + 1):]
        elif how == 3:
            b[i:i] = bytes(r.randrange(256) for _ in range(r.randint(1, 8)))
        elif how == 4:
            del b[i:i + r.randint(1, 16)]
        else:
            b[i:i] = b[i:i + r.randint(1, 64)]
    return bytes(b)


def mutate_onnx(data: bytes, r: random.Random) -> bytes:
    """One to three changes to the fields of the ModelProto the loader reads."""
    import onnx
    m = onnx.ModelProto.FromString(data)
    g = m.graph
    values = [*g.input, *g.output, *g.value_info]
    names = [n for node in g.node for n in (*node.input, *node.output)] + [t.name for t in g.initializer]
    for _ in range(r.randint(1, 3)):
        how = r.randrange(12)
        if how == 0 and values:  # a dimension of an input, output or value_info
            dims = r.choice(values).type.tensor_type.shape.dim
            if dims:
                d = r.choice(dims)
                d.dim_value = _number(r, "int") % 2 ** 63 if r.random() < .8 else 0
                if r.random() < .2:
                    d.dim_param = "n"
            elif r.random() < .5:
                dims.add().dim_value = 1
        elif how == 1 and values:  # an element type
            r.choice(values).type.tensor_type.elem_type = r.randrange(27)
        elif how == 2 and g.initializer:  # an initializer's dims or dtype
            t = r.choice(g.initializer)
            if r.random() < .5 and t.dims:
                t.dims[r.randrange(len(t.dims))] = _number(r, "int")
            elif r.random() < .5:
                t.dims.append(r.choice([1, 2, 2 ** 31]))
            else:
                t.data_type = r.randrange(27)
        elif how == 3 and g.initializer:  # an initializer's data: cut, grown, moved to a typed field, external
            t = r.choice(g.initializer)
            choice = r.randrange(4)
            if choice == 0:
                t.raw_data = t.raw_data[:r.randrange(len(t.raw_data) + 1)]
            elif choice == 1:
                t.raw_data += bytes(r.randrange(1, 64))
            elif choice == 2:
                t.ClearField("raw_data")
                t.float_data.extend([_number(r, "float")] * r.randint(0, 8))
            else:
                t.data_location = onnx.TensorProto.EXTERNAL
                t.external_data.add(key="location", value=r.choice(["missing.bin", "../../etc/hostname", "/dev/zero"]))
                if r.random() < .5:
                    t.external_data.add(key="length", value=str(2 ** 40))
        elif how == 4 and g.node:  # a node's input or output name
            n = r.choice(g.node)
            field = n.input if r.random() < .6 or not n.output else n.output
            if field:
                field[r.randrange(len(field))] = r.choice([*names, "", "nowhere"])
            else:
                field.append(r.choice(names))
        elif how == 5 and g.node:  # an extra or a missing input
            n = r.choice(g.node)
            if n.input and r.random() < .5:
                del n.input[-1]
            else:
                n.input.append(r.choice([*names, ""]))
        elif how == 6 and g.node:  # an attribute's value or type
            n = r.choice(g.node)
            if n.attribute and r.random() < .8:
                a = r.choice(n.attribute)
                if a.ints:
                    a.ints[r.randrange(len(a.ints))] = _number(r, "int")
                elif r.random() < .3:
                    del n.attribute[list(n.attribute).index(a)]
                else:
                    a.i, a.f = _number(r, "int"), _number(r, "float")
                    a.type = r.choice([onnx.AttributeProto.INT, onnx.AttributeProto.FLOAT, a.type])
            else:
                n.attribute.append(onnx.helper.make_attribute(
                    r.choice(["axis", "group", "kernel_shape", "pads", "strides", "perm", "alpha"]),
                    r.choice([_number(r, "int"), [_number(r, "int")] * r.randint(1, 4), _number(r, "float")])))
        elif how == 7 and g.node:  # an op type or domain
            n = r.choice(g.node)
            if r.random() < .8:
                n.op_type = r.choice([node.op_type for node in g.node] + ["Shape", "Cast", "Resize", "Pad", "Split",
                                                                         "Reshape", "Slice", "Loop", "If"])
            else:
                n.domain = r.choice(["com.microsoft", "ai.onnx.ml", "x"])
        elif how == 8:  # the opset or the IR version
            if r.random() < .7 and m.opset_import:
                m.opset_import[0].version = r.choice([1, 6, 9, 11, 12, 13, 17, 18, 21, 23, 99, 2 ** 40])
            else:
                m.ir_version = r.choice([0, 1, 3, 7, 11, 99])
        elif how == 9 and g.node:  # a node removed, duplicated or moved
            i = r.randrange(len(g.node))
            n = onnx.NodeProto()
            n.CopyFrom(g.node[i])
            if r.random() < .5:
                del g.node[i]
            if r.random() < .5:
                g.node.insert(r.randrange(len(g.node) + 1), n)
        elif how == 10 and g.initializer:  # an initializer's values
            t = r.choice(g.initializer)
            a = onnx.numpy_helper.to_array(t).copy()
            if a.size and a.dtype.kind in "fiu":
                a.reshape(-1)[r.randrange(a.size)] = np.asarray(_number(r, "float" if a.dtype.kind == "f" else "int"))\
                    .astype(a.dtype) if a.dtype.kind == "f" else _number(r, "int") % 256
                t.CopyFrom(onnx.numpy_helper.from_array(a, t.name))
        elif how == 11 and g.input:  # a graph input or output dropped or repeated
            field = g.input if r.random() < .5 else g.output
            if field and r.random() < .5:
                del field[r.randrange(len(field))]
            elif field:
                field.add().CopyFrom(r.choice(field))
    return m.SerializeToString()


def mutate_tflite(data: bytes, r: random.Random) -> bytes:
    """One to three changes to the flatbuffer's tables, through LiteRT's object API, re-packed."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb
    m = fb.ModelT.InitFromPackedBuf(data, 0)
    sub = m.subgraphs[0]
    tensors, ops, buffers = sub.tensors, sub.operators, m.buffers
    for _ in range(r.randint(1, 3)):
        t, o = r.choice(tensors), r.choice(ops)
        how = r.randrange(11)
        if how == 0:  # a tensor's buffer index
            t.buffer = r.choice([0, len(buffers) - 1, len(buffers), r.randrange(len(buffers)), -1, 2 ** 31 - 1])
        elif how == 1:  # a shape
            shape = list(t.shape if t.shape is not None else [])
            if shape and r.random() < .7:
                shape[r.randrange(len(shape))] = _number(r, "int") % 2 ** 31 if r.random() < .8 else -1
            elif r.random() < .5:
                shape.append(r.choice([1, 2, 0]))
            else:
                shape = shape[:-1]
            t.shape = shape
        elif how == 2:  # a dtype
            t.type = r.randrange(-1, 20)
        elif how == 3:  # quantization arrays: scales, zero points, their lengths, the axis
            q = t.quantization or fb.QuantizationParametersT()
            t.quantization = q
            choice = r.randrange(4)
            if choice == 0:
                q.scale = [_number(r, "float") for _ in range(r.choice([0, 1, 2, 4, 5]))]
            elif choice == 1:
                q.zeroPoint = [_number(r, "int") for _ in range(r.choice([0, 1, 3, 4]))]
            elif choice == 2:
                q.quantizedDimension = _number(r, "int") % 2 ** 31
            else:
                q.scale = [_number(r, "float")] * max(1, len(q.scale if q.scale is not None else []))
        elif how == 4:  # an operator's input or output tensor index
            field = o.inputs if r.random() < .6 else o.outputs
            if field is not None and len(field):
                field = list(field)
                field[r.randrange(len(field))] = r.choice([-1, 0, len(tensors) - 1, len(tensors), r.randrange(len(tensors))])
                o.inputs, o.outputs = (field, o.outputs) if field is not o.outputs else (o.inputs, field)
            else:
                o.inputs = [r.randrange(len(tensors))]
        elif how == 5:  # inputs or outputs dropped or added
            if r.random() < .5:
                o.inputs = list(o.inputs)[:-1] if o.inputs is not None else []
            else:
                o.outputs = [*(o.outputs if o.outputs is not None else []), r.randrange(len(tensors))]
        elif how == 6:  # an opcode index, or an opcode's builtin code
            if r.random() < .5:
                o.opcodeIndex = r.choice([len(m.operatorCodes), r.randrange(len(m.operatorCodes)), 2 ** 31 - 1])
            else:
                oc = r.choice(m.operatorCodes)
                oc.builtinCode = oc.deprecatedBuiltinCode = r.choice([r.randrange(210), 0, 127, 32])
        elif how == 7 and o.builtinOptions is not None:  # an option field (strides, padding, axis, beta, ...)
            fields = [k for k, v in vars(o.builtinOptions).items() if isinstance(v, (int, float))]
            if fields:
                k = r.choice(fields)
                setattr(o.builtinOptions, k, _number(r, "float" if isinstance(getattr(o.builtinOptions, k), float)
                                                     else "int") if r.random() < .8 else r.randrange(4))
        elif how == 8:  # buffer data cut, grown or dropped
            b = r.choice(buffers)
            if b.data is not None and len(b.data):
                b.data = [np.asarray(b.data)[:r.randrange(len(b.data))], np.concatenate([np.asarray(b.data),
                          np.zeros(r.randint(1, 16), np.uint8)]), None][r.randrange(3)]
        elif how == 9:  # the subgraph's inputs or outputs
            field = r.choice(["inputs", "outputs"])
            setattr(sub, field, [r.choice([-1, 0, len(tensors), r.randrange(len(tensors))])] if r.random() < .7 else [])
        elif how == 10:  # an operator removed, duplicated or moved
            i = r.randrange(len(ops))
            op = ops.pop(i) if r.random() < .5 else ops[i]
            if r.random() < .6:
                ops.insert(r.randrange(len(ops) + 1), op)
            if not ops:
                ops.append(op)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def mutant(seed: Path, number: int, data: bytes | None = None) -> tuple[bytes, str]:
    """Mutant `number` of `seed` (deterministic) and the mutator that made it: structural for two
    thirds of the numbers, byte-level for the rest; a structural mutation the schema code cannot
    serialize falls back to bytes."""
    data = seed.read_bytes() if data is None else data
    r = random.Random(f"{seed.name}:{number}")
    if r.random() < 2 / 3:
        try:
            return (mutate_onnx if seed.suffix == ".onnx" else mutate_tflite)(data, r), "structure"
        except Exception:
            pass
    return mutate_bytes(data, r), "bytes"


# ---------------------------------------------------------------- classification (in the worker)

def signature(outcome: str, err: BaseException | None, detail: str = "") -> str:
    """A bug's identity: outcome, exception type, the message with numbers and names blanked, and
    the innermost frame inside mcuforge."""
    if err is None:
        return f"{outcome}: {detail}"
    frames = [f for f in traceback.extract_tb(err.__traceback__) if "mcuforge" in f.filename]
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].name}" if frames else ""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'_'", str(err).splitlines()[0] if str(err) else "")
    text = re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "N", text)[:120]
    return f"{outcome}: {type(err).__name__}: {text}{where}"


def load_outcome(path: Path) -> tuple[str, str]:
    """Load `path` with its frontend: (outcome, detail)."""
    from mcuforge.errors import Error
    try:
        if path.suffix == ".onnx":
            from mcuforge.frontends.onnx import load_onnx
            load_onnx(path)
        else:
            from mcuforge.frontends.tflite import load_tflite
            load_tflite(path)
    except Error as e:
        outcome = "internal" if e.exit_code == 1 else "typed"
        return outcome, signature(outcome, e) if outcome == "internal" else type(e).__name__
    except (Exception, RecursionError) as e:
        return "untyped", signature("untyped", e)
    return "ok", "loaded"


def compile_outcome(path: Path, out: Path) -> tuple[str, str]:
    """`mcuforge compile PATH --emit c -o OUT` through the CLI's main(): (outcome, detail)."""
    import contextlib
    import io

    from mcuforge.compiler.cli import main
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(["compile", str(path), "--emit", "c", "-o", str(out), "-q"])
        except SystemExit as e:  # argparse
            code = e.code
    left = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    if left or code != 0 and out.exists():
        return "partial", f"partial: exit {code} left {sorted(left) or [out.name]}"
    if code == 1:
        return "internal", "internal: " + re.sub(r"\d+", "N", err.getvalue().strip().splitlines()[0][:160])
    if code == 0 and not (out / "c").is_dir():
        return "partial", "partial: exit 0 without the c directory"
    return ("ok", "compiled") if code == 0 else ("typed", f"exit {code}")


def worker(limit_bytes: int):
    """The worker's loop: read a JSON request per line on stdin, answer one JSON line on stdout."""
    import resource
    import shutil
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    answers, sys.stdout = sys.stdout, sys.stderr  # what the compiler prints must not mix with the answers
    for line in sys.stdin:
        job = json.loads(line)
        path = Path(job["path"])
        outcome, detail = load_outcome(path)
        if job["cli"]:
            out = path.with_suffix(".out")
            cli = compile_outcome(path, out)
            shutil.rmtree(out, ignore_errors=True)
            if cli[0] in BUGS or outcome not in BUGS:
                outcome, detail = cli if cli[0] in BUGS else (outcome, detail)
        answers.write(json.dumps([outcome, detail]) + "\n")
        answers.flush()


# ---------------------------------------------------------------- the driver (in the caller)

class Worker:
    """A worker process, restarted after a crash or a hang."""

    def __init__(self, limit_bytes: int = 3 << 30, timeout: float = 60):
        self.limit, self.timeout, self.proc = limit_bytes, timeout, None

    def start(self):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(Path(__file__).parent)]),
               "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", f"import harness; harness.worker({self.limit})"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, bufsize=1,
                                     stderr=subprocess.DEVNULL)

    def run(self, path: Path, cli: bool) -> tuple[str, str]:
        """(outcome, detail) of one input."""
        import selectors
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        self.proc.stdin.write(json.dumps({"path": str(path), "cli": cli}) + "\n")
        self.proc.stdin.flush()
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        ready = sel.select(self.timeout)
        sel.close()
        line = self.proc.stdout.readline() if ready else ""
        if line:
            return tuple(json.loads(line))
        if not ready:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            return "hang", f"hang: more than {self.timeout:.0f} s"
        code = self.proc.wait()
        self.proc = None
        return "crash", f"crash: worker exit {code}"

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait()
            self.proc = None


def campaign(seeds: list[Path], numbers, work: Path, cli_every: int = 10, worker: Worker | None = None,
             on_result=None) -> tuple[Counter, dict]:
    """Run mutant `n` of every seed for each n in `numbers` (the CLI for every `cli_every`-th
    input): the count per outcome, and {bug signature: (seed, number)} of the first input of each."""
    counts, bugs, own = Counter(), {}, worker is None
    worker = worker or Worker()
    datas = {s: s.read_bytes() for s in seeds}
    k = 0
    try:
        for number in numbers:
            for seed in seeds:
                data, _ = mutant(seed, number, datas[seed])
                path = work / f"input{seed.suffix}"
                path.write_bytes(data)
                outcome, detail = worker.run(path, cli=k % cli_every == 0)
                k += 1
                counts[outcome] += 1
                if outcome in BUGS and detail not in bugs:
                    bugs[detail] = (seed.name, number)
                if on_result:
                    on_result(seed, number, outcome, detail)
    finally:
        if own:
            worker.close()
    return counts, bugs
