"""The benchmark scripts run (in their quick modes) and print the tables they promise."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_memory_benchmark_table():
    lines = run_script("memory.py", "--quick").splitlines()
    header, rows = lines[0].split(), {}
    for line in lines[1:]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = cells
    assert header[:2] == ["model", "nodes"] and list(rows) == ["tiny_cnn", "resnet8", "unet_tiny"]
    for cells in rows.values():
        traced, scheduled, arena = (int(c.replace(",", "")) for c in (cells[2], cells[3], cells[5]))
        assert scheduled <= traced and arena >= scheduled and abs(float(cells[7]) - arena / scheduled) < 5e-4
    assert int(rows["unet_tiny"][3].replace(",", "")) < int(rows["unet_tiny"][2].replace(",", ""))
    assert lines[-1].startswith("scheduling and planning a 10,000-node chain: ")


def test_quantization_sqnr_table():
    lines = run_script("quant_sqnr.py", "--quick").splitlines()
    assert lines[0].split()[:2] == ["model", "layers"]
    rows = {line.split()[0]: line.split() for line in lines[1:3]}
    assert list(rows) == ["digits_cnn", "tiny_cnn"]
    for cells in rows.values():
        float_bytes, int8_bytes = (int(c.replace(",", "")) for c in cells[2:4])
        assert int8_bytes < float_bytes / 3 and float(cells[4]) > 20 and len(cells) == 7  # no "< 20 dB" mark
    assert lines[-1].startswith("int8, minmax observer") and "2/2 models at or above 20 dB" in lines[-1]
