"""Regression inputs, by seed and mutant number: the first mutant of every failure class the fuzzer
found once the TFLite importer stopped calling every internal exception "corrupt" (and the long
runs after it). Each was an untyped exception (IndexError, AttributeError, ZeroDivisionError,
KeyError, ...) from a converter or a shape rule; each must now be the typed error that names the
operator and what is wrong with it."""
import pytest
from harness import make_seeds, mutant

from mcuforge.errors import ModelLoadError, UnsupportedOpError
from mcuforge.frontends.onnx import load_onnx
from mcuforge.frontends.tflite import load_tflite

CASES = [  # seed, mutant number, error, what the message says
    ("dwnet_int8.tflite", 1, ModelLoadError, r"DEPTHWISE_CONV_2D of input .* filter \[1, 3, 3, 4, 1\]"),
    ("dwnet_int16x8.tflite", 4, ModelLoadError, "QUANTIZE writes 2 tensors, its IR form has 1 results"),
    ("convnet_int8.tflite", 8, ModelLoadError, "the operator has 0 inputs, its converter reads inputs 0"),
    ("convnet_int8.tflite", 28, ModelLoadError, r"operator 3 \(CONV_2D\): window options"),
    ("dwnet_int8.tflite", 51, UnsupportedOpError, r"AVERAGE_POOL_2D: on \['i8', 'bool'\] tensors"),
    ("convnet_int4.tflite", 245, ModelLoadError, r"float options \{'beta': nan\} are not finite"),
    ("convnet_int8.tflite", 259, ModelLoadError, r"CONV_2D of input \[\] and filter"),
    ("dwnet_int16x8.tflite", 281, ModelLoadError, r"DEPTHWISE_CONV_2D\): window options"),
    ("convnet_int8.tflite", 173, UnsupportedOpError, r"ADD: on \['i8', 'i32', 'i8'\] tensors"),
    # the long run (--start 200000): a ZeroDivisionError in the conv shape rule, groups 0
    ("dwnet_float.tflite", 200247, UnsupportedOpError, "CONV_2D: input has 0 channels, weight expects 4 x groups 0"),
    ("dwnet_int16x8.tflite", 201574, UnsupportedOpError,
     "QUANTIZE: quantizes to f32 tensor 'hardswish' without quantization"),
    # --start 300000: a Concat input with an empty name (absent), which onnx.checker lets through
    ("dwnet_pow2.onnx", 302124, ModelLoadError, r"node cat \(Concat\) has no input 2, which it needs"),
    # --start 600000: a CONCATENATION of no inputs (an IndexError in the concat shape rule)
    ("dwnet_int8.tflite", 604304, UnsupportedOpError, "CONCATENATION: a concat of no tensors"),
]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return {s.name: s for s in make_seeds(tmp_path_factory.mktemp("seeds"))}


@pytest.mark.parametrize("seed,number,error,message", CASES)
def test_fuzzed_input_gets_a_typed_error(seeds, tmp_path, seed, number, error, message):
    path = tmp_path / seed
    path.write_bytes(mutant(seeds[seed], number)[0])
    with pytest.raises(error, match=message) as err:
        (load_onnx if path.suffix == ".onnx" else load_tflite)(path)
    assert err.value.exit_code == 3 and err.value.hint


def test_c_backend_refuses_tensors_without_elements(seeds, tmp_path):
    """--start 400000: a graph input of batch 0 (and no outputs) reached the C emitter, which has no
    offset for it (the memory planner skips empty buffers): a KeyError, exit 1."""
    from mcuforge.compiler.cli import main
    path = tmp_path / "m.onnx"
    path.write_bytes(mutant(seeds["dwnet_float.onnx"], 402138)[0])
    assert main(["compile", str(path), "--emit", "c", "-o", str(tmp_path / "out"), "-q"]) == 3
    assert not (tmp_path / "out").exists()
