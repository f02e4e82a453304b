"""The core (ir, compiler, passes) stays small enough to read in a day."""
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mcuforge"
BUDGET = 9000  # lines of Python, comments and docstrings included (8,600 with approximate computing and sweeps)


def test_core_line_budget():
    files = [p for d in ("ir", "compiler", "passes") for p in (SRC / d).rglob("*.py")]
    counts = {str(p.relative_to(SRC)): len(p.read_text().splitlines()) for p in files}
    total = sum(counts.values())
    biggest = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:5])
    assert total <= BUDGET, f"core has {total} lines, budget {BUDGET}; biggest: {biggest}"
