"""The onnx package's own backend test models (onnx/backend/test/data in the installed wheel) through
the ONNX frontend and the reference interpreter, against the outputs stored beside them (within 1e-4
of each output's largest magnitude), and the small ones through the C backend built with gcc.

Every model whose inputs and outputs are float32 tensors counts: pytorch-converted and
pytorch-operator (torch modules and operators, exported by an old torch), simple (hand-written
graphs), light (real architectures at 224x224 with constant weights; their input is the onnx
runner's arange(n) / n; interpreter only, they are big). A model either matches or is refused with an
UnsupportedOpError naming its ops; REFUSED lists the refusals (training graphs, which a
microcontroller inference graph cannot be). Each folder prints its counts (pytest -s shows them)."""
import glob
import os

import numpy as np
import onnx
import onnx.backend.test
import pytest
from onnx import numpy_helper
from support.cbuild import host_run

import mcuforge
from mcuforge.errors import UnsupportedOpError
from mcuforge.frontends.onnx import load_onnx
from mcuforge.ir.interpreter import run

DATA = os.path.join(os.path.dirname(onnx.backend.test.__file__), "data")
FOLDERS = ("pytorch-converted", "pytorch-operator", "simple", "light")
# model -> what its refusal names: training graphs
REFUSED = {"test_gradient_of_add": "Gradient", "test_gradient_of_add_and_mul": "Gradient"}
C_LIMIT = 20_000  # input elements of the models also built in C


def _tensors(pattern):
    return [numpy_helper.to_array(onnx.load_tensor(f)) for f in sorted(glob.glob(pattern))]


def _float32(model_path) -> bool:
    g = onnx.load(model_path, load_external_data=False).graph
    inits = {i.name for i in g.initializer}
    return all(v.type.HasField("tensor_type") and v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
               for v in [*(i for i in g.input if i.name not in inits), *g.output])


def _light_inputs(model_path):
    """The onnx backend runner's inputs for a light model: arange(n) / n in each input's shape."""
    g = onnx.load(model_path).graph
    inits = {i.name for i in g.initializer}
    shapes = [tuple(d.dim_value for d in i.type.tensor_type.shape.dim) for i in g.input if i.name not in inits]
    return [(np.arange(np.prod(s)).reshape(s) / np.prod(s)).astype(np.float32) for s in shapes]


def models(folder):
    """(name, model path, [(inputs, outputs) per data set]) of the folder's float32 models."""
    if folder == "light":
        for path in sorted(glob.glob(f"{DATA}/light/*.onnx")):
            yield os.path.basename(path)[:-5], path, [(_light_inputs(path), _tensors(path[:-5] + "_output_*.pb"))]
        return
    for d in sorted(glob.glob(f"{DATA}/{folder}/*/")):
        if _float32(d + "model.onnx"):
            sets = sorted(glob.glob(d + "test_data_set_*"))
            yield os.path.basename(d[:-1]), d + "model.onnx", [(_tensors(s + "/input_*.pb"), _tensors(s + "/output_*.pb"))
                                                               for s in sets]


def matches(got, want) -> bool:
    scale = max(float(np.nanmax(np.abs(want), initial=0)), 1e-30)  # sqrt and pow of negatives: NaN in both
    return got.shape == want.shape and np.allclose(got, want, rtol=1e-4, atol=1e-4 * scale, equal_nan=True)


@pytest.mark.parametrize("folder", FOLDERS)
def test_interpreter_matches_the_stored_outputs(folder):
    matched, refused, wrong = [], [], []
    for name, path, sets in models(folder):
        try:
            g = load_onnx(path)
        except UnsupportedOpError as e:
            assert e.items and all(i.op for i in e.items), f"{name}: a refusal naming no op: {e}"
            refused.append(f"{name} ({', '.join(sorted({i.op for i in e.items}))})")
            assert name in REFUSED and all(REFUSED[name] in i.op for i in e.items), f"{name} refused: {e}"
            continue
        ok = all(matches(a, b) for xs, ys in sets for a, b in zip(run(g, *xs), ys, strict=True))
        (matched if ok else wrong).append(name)
    total = len(matched) + len(refused) + len(wrong)
    print(f"\n{folder}: {len(matched)}/{total} match, {len(refused)} refused, {len(wrong)} wrong"
          + "".join(f"\n  refused {r}" for r in refused))
    assert not wrong, f"{folder}: wrong results from {wrong}"
    assert total and len(refused) == sum(1 for _, p, _ in models(folder) if os.path.basename(os.path.dirname(p))
                                          in REFUSED)


SMALL = [(name, path, sets) for folder in FOLDERS[:3] for name, path, sets in models(folder)
         if name not in REFUSED and sum(x.size for x in sets[0][0]) <= C_LIMIT]


@pytest.mark.parametrize("name, path, sets", SMALL, ids=[s[0] for s in SMALL])
def test_small_models_in_c_match_the_stored_outputs(tmp_path, name, path, sets):
    graph = mcuforge.compile(path, emit=()).graph
    for i, (xs, ys) in enumerate(sets):
        for got, want in zip(host_run(tmp_path / str(i), graph, xs), ys, strict=True):
            assert matches(got, want), f"{name}: C differs by {np.nanmax(np.abs(got - want))}"
