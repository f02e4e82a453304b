"""`--emit project`: a firmware project per bundled Arm target, built with CMake and
arm-none-eabi-gcc against the part's memory map (the link fails when the model does not fit), run
under QEMU on netduinoplus2 (an STM32F405) with the host C runner's bytes, plus the packaging
files (Zephyr, PlatformIO, Arduino) and the errors."""
from __future__ import annotations

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import mcuforge
from mcuforge.backends.project import example_vector
from mcuforge.compiler.cli import main
from mcuforge.compiler.targets import list_targets, load_target
from mcuforge.errors import DoesNotFitError, UsageError

ARM = [t.name for t in list_targets() if t.flash_origin is not None]
TOOLCHAIN = "-DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.toolchain.cmake"


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()


def compile_project(out: Path, target: str, quantize: str | None = "int8", model=None, **kw):
    rng = np.random.default_rng(0)
    calibration = [rng.standard_normal((1, 1, 12, 12)).astype(np.float32) for _ in range(4)] if quantize else None
    return mcuforge.compile(model or small_cnn(), (torch.zeros(1, 1, 12, 12),), target=target, quantize=quantize,
                            calibration=calibration, passes="deploy", out_dir=out, **kw)


def cmake_build(project: Path, *options: str) -> subprocess.CompletedProcess:
    configure = subprocess.run(["cmake", "-B", "build", TOOLCHAIN, *options], cwd=project, capture_output=True,
                               text=True)
    assert configure.returncode == 0, configure.stdout + configure.stderr
    return subprocess.run(["cmake", "--build", "build"], cwd=project, capture_output=True, text=True)


def test_every_arm_target_builds_at_its_memory_map(tmp_path):
    """Each bundled Arm part: the example firmware links, its vector table at the start of the
    part's flash (after the boot stage's bytes), its data in the part's SRAM; the packaging files
    name the library's sources."""
    assert {"stm32f405rg", "stm32f446re", "stm32f746", "stm32h743zi", "stm32l4r5zi", "stm32u585ai", "stm32g071rb",
            "nrf52840", "nrf5340", "rp2040", "samd21g18a", "imxrt1062", "cortex-m55"} <= set(ARM)

    projects = [compile_project(tmp_path / name, name, emit=("project",)).files["project"] for name in ARM]
    with ThreadPoolExecutor(2) as pool:  # (tracing is not thread-safe; building is)
        built = list(pool.map(cmake_build, projects))
    for name, project, r in zip(ARM, projects, built):
        t = load_target(name)
        assert r.returncode == 0, f"{name}:\n{r.stdout}\n{r.stderr}"
        assert re.search(r"FLASH:\s+\d+ B", r.stdout) and re.search(r"RAM:\s+\d+ B", r.stdout), name
        sections = subprocess.run(["arm-none-eabi-readelf", "-SW", project / "build" / "model_example.elf"],
                                  capture_output=True, text=True, check=True).stdout
        text = re.search(r"\.text\s+PROGBITS\s+([0-9a-f]+)", sections).group(1)
        bss = re.search(r"\.bss\s+NOBITS\s+([0-9a-f]+)", sections).group(1)
        assert int(text, 16) == t.flash_origin + t.boot_reserved, name
        assert t.sram_origin <= int(bss, 16) < t.sram_origin + t.sram, name
        sources = sorted(p.name for p in (project / "src").glob("*.c"))
        assert "model.c" in sources and "conv_s8.c" in sources
        assert json.loads((project / "library.json").read_text())["build"]["srcDir"] == "src"
        props = dict(line.split("=", 1) for line in (project / "library.properties").read_text().splitlines())
        assert props["name"] == "model" and props["includes"] == "model.h"
        zephyr = (project / "zephyr" / "CMakeLists.txt").read_text()
        assert all(f"../src/{s}" in zephyr for s in sources) and "name: model" in (project / "zephyr" /
                                                                                    "module.yml").read_text()
        assert ("MCUFORGE_USE_DSP" in (project / "CMakeLists.txt").read_text()) == t.dsp


@pytest.mark.parametrize("quantize", ["int8", None], ids=["int8", "float"])
def test_runs_on_netduinoplus2_with_the_host_bytes(tmp_path, quantize):
    """The firmware under QEMU's netduinoplus2 (STM32F405, semihosting): PASS, and the output bytes
    it prints are the host C runner's for the same test vector (int8: the interpreter's too)."""
    art = compile_project(tmp_path / "out", "stm32f405rg", quantize, emit=("project", "c"))
    project = art.files["project"]
    assert load_target("stm32f405rg").qemu_machine == "netduinoplus2"
    r = cmake_build(project, "-DMCUFORGE_SEMIHOSTING=ON")
    assert r.returncode == 0, r.stdout + r.stderr
    run = subprocess.run(["qemu-system-arm", "-M", "netduinoplus2", "-nographic", "-monitor", "none", "-serial", "none",
                          "-semihosting-config", "enable=on,target=native", "-kernel",
                          project / "build" / "model_example.elf"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip().endswith("model: PASS"), run.stdout + run.stderr
    printed = bytes.fromhex("".join(re.search(r"output 0:\n((?:  [0-9a-f]+\n)+)", run.stdout).group(1).split()))
    xs, ys = example_vector(art.graph)
    c_dir = art.files["c"]
    subprocess.run(["make", "-s", "host"], cwd=c_dir, check=True, capture_output=True)
    host = subprocess.run([c_dir / "model_host"], input=b"".join(x.tobytes() for x in xs), capture_output=True,
                          check=True).stdout
    assert printed == host
    if quantize:
        assert printed == ys[0].tobytes()
    else:
        np.testing.assert_allclose(np.frombuffer(printed, np.float32), ys[0].ravel(), rtol=1e-3, atol=1e-4)


def test_the_link_fails_when_the_part_is_too_small(tmp_path):
    """A model bigger than the STM32G071's 128 KB of flash: refused before anything is written
    (exit 4 on the CLI); past the fit check, the project's own link fails on the part's memory map."""
    big = nn.Sequential(nn.Flatten(), nn.Linear(144, 1200), nn.ReLU(), nn.Linear(1200, 10)).eval()
    with pytest.raises(DoesNotFitError):
        compile_project(tmp_path / "refused", "stm32g071rb", model=big, emit=("project",))
    assert not (tmp_path / "refused").exists()
    project = compile_project(tmp_path / "forced", "stm32g071rb", model=big, emit=("project",),
                              fit_check=False).files["project"]
    r = cmake_build(project)
    assert r.returncode != 0 and "region `FLASH' overflowed" in r.stdout + r.stderr


def test_needs_an_arm_target(tmp_path):
    with pytest.raises(UsageError, match="made for a target part"):
        compile_project(tmp_path / "a", None, emit=("project",))
    with pytest.raises(UsageError, match="esp32s3 .* no Arm Cortex-M memory map"):
        compile_project(tmp_path / "b", "esp32s3", emit=("project",))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_emits_a_project(tmp_path):
    assert main(["compile", "zoo:tiny_cnn", "--emit", "project", "--target", "stm32f405rg", "-o",
                 str(tmp_path / "out")]) == 0
    project = tmp_path / "out" / "project"
    assert (project / "example" / "stm32f405rg.ld").is_file() and (project / "src" / "model.c").is_file()
    assert "netduinoplus2" in (project / "README.md").read_text()
    assert cmake_build(project).returncode == 0
