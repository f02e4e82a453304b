"""report.html: self-contained, shows the layer table, the capacity bars and the memory picture,
and renders in headless Chromium without console errors."""
import re
import shutil
import subprocess
from html.parser import HTMLParser

import mcuforge
from mcuforge import zoo
from mcuforge.analysis.memory import MemoryPlan
from mcuforge.compiler.html_report import HEIGHT, WIDTH, render_html, timeline_boxes


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.refs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]


def fake_plan():
    # three buffers over four steps; b reuses a's bytes after a dies
    return MemoryPlan(arena_bytes=300, lower_bound_bytes=300, alignment=16, algorithm="greedy-size",
                      schedule=["n0", "n1", "n2", "n3"], offsets={"a": 0, "b": 0, "c": 100},
                      sizes={"a": 100, "b": 100, "c": 200}, lifetimes={"a": (0, 1), "b": (2, 3), "c": (1, 2)},
                      aliases={})


def test_timeline_boxes_place_buffers():
    boxes = {b["name"]: b for b in timeline_boxes(fake_plan())}
    assert boxes["a"]["x"] == 0 and boxes["a"]["w"] == WIDTH / 2
    assert boxes["b"]["x"] == WIDTH / 2 and boxes["a"]["y"] == boxes["b"]["y"] == HEIGHT * (1 - 100 / 300)
    assert boxes["c"]["y"] == 0 and boxes["c"]["h"] == HEIGHT * 200 / 300


def test_compile_writes_a_self_contained_page(tmp_path):
    model, inputs = zoo.get("tiny_cnn")
    art = mcuforge.compile(model, inputs, out_dir=tmp_path / "b", target="stm32f446re")
    page = art.files["report"].read_text()
    p = Tags()
    p.feed(page)
    assert p.refs == [] and "script" not in p.tags  # nothing fetched, nothing run
    assert page.count("<tr>") >= len(art.report.layers) + len(art.report.passes)
    assert "stm32f446re" in page and "flash (weights)" in page
    assert re.search(r'class="fill" style="width: \d+\.\d%"', page)


def test_plan_picture_and_over_capacity_bar():
    model, inputs = zoo.get("tiny_cnn")
    art = mcuforge.compile(model, inputs, emit=())
    tiny = mcuforge.load_target("rp2040").with_sizes(sram=100, flash=100)
    page = render_html(art.report, fake_plan(), tiny)
    assert page.count("<rect") == 3 and 'class="barrow over"' in page


def test_renders_in_headless_chromium(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is required (CI installs the Debian package)"
    model, inputs = zoo.get("tiny_cnn")
    art = mcuforge.compile(model, inputs, emit=())
    page = tmp_path / "report.html"
    page.write_text(render_html(art.report, fake_plan(), mcuforge.load_target("stm32f746")))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    r = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'id="memory-timeline"' in r.stdout and r.stdout.count("<rect") == 3 and 'id="layers"' in r.stdout
    assert "CONSOLE" not in r.stderr and "Uncaught" not in r.stderr
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank


def test_quantized_page_has_the_quantization_table_flash_per_layer_and_named_buffers(tmp_path):
    import numpy as np
    model, (x,) = zoo.get("tiny_cnn")
    calibration = np.random.default_rng(0).standard_normal((8, *x.shape)).astype(np.float32)
    art = mcuforge.compile(model, (x,), quantize="int8", calibration=calibration, out_dir=tmp_path)
    page = (tmp_path / "report.html").read_text()
    table = page.split('id="quantization"')[1].split("</table>")[0]
    rows = art.report.quant_rows()
    assert rows and all(f"<td>{r[0]}</td><td>{r[1]}</td>" in table for r in rows)
    assert art.report.quant_summary().split(" (")[0] in page.split("<h2>Quantization</h2>")[1]
    assert "<th>flash bytes</th>" in page and all(f"{layer.param_bytes:,}" in page for layer in art.report.layers)
    labelled = [b for b in timeline_boxes(art.plan) if b["label"]]
    assert labelled and all(f'pointer-events="none">{b["label"]}</text>' in page for b in labelled)
    assert all(b["w"] >= 6 * len(b["label"]) for b in labelled)
