"""`report.html`: the compile report as one self-contained page (no network, no scripts).

The page shows the per-layer table (with each layer's flash), the quantization table of a
quantized model (scheme, scales, SQNR and sensitivity per layer), flash and RAM against the target's capacity as bars (when C
was emitted, also arm-none-eabi-size's figures and TFLite Micro's arena, see backends/c/size.py), the
memory plan as a picture (buffers as boxes: x = schedule step, y = arena offset, named where the
name fits and on hover), the passes with
their timings, and the optimizations that did not happen with their reasons. Python prepares
every number and box here; the template only loops over them.
"""
from __future__ import annotations

import colorsys
import hashlib
from pathlib import Path

import jinja2

from ..ir.cost import human_bytes
from ..version import __version__
from .report import Report

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                          autoescape=True, trim_blocks=True, lstrip_blocks=True)
WIDTH, HEIGHT = 880, 360


def _color(name: str) -> str:
    h = int(hashlib.md5(name.encode()).hexdigest()[:6], 16) / 0xFFFFFF
    r, g, b = colorsys.hls_to_rgb(h, 0.62, 0.55)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def timeline_boxes(plan) -> list[dict]:
    """One SVG box per planned buffer: x from its first to its last step, y its byte range."""
    steps = max(len(plan.schedule), 1)
    arena = max(plan.arena_bytes, 1)
    boxes = []
    for name, (first, last) in plan.lifetimes.items():
        if name not in plan.offsets:
            continue
        off, size = plan.offsets[name], plan.sizes[name]
        box = dict(name=name, x=WIDTH * first / steps, w=max(WIDTH * (last - first + 1) / steps, 1.5),
                   y=HEIGHT * (1 - (off + size) / arena), h=max(HEIGHT * size / arena, 1.0),
                   color=_color(name), title=f"{name}: {human_bytes(size)} at offset {off}, steps {first}..{last}")
        # a label where it fits (about 6 px per character of 10 px text), else the hover title only
        box["label"] = name if box["w"] >= 6 * len(name) + 4 and box["h"] >= 12 else ""
        boxes.append(box)
    return boxes


def _bar(label: str, used: int, capacity: int | None) -> dict:
    frac = used / capacity if capacity else None
    return dict(label=label, used=human_bytes(used), capacity=human_bytes(capacity) if capacity else "no target",
                pct=min(frac, 1.0) * 100 if frac is not None else 0, over=frac is not None and frac > 1,
                text=f"{frac * 100:.1f}%" if frac is not None else "")


def render_html(report: Report, plan=None, target=None) -> str:
    ram = plan.arena_bytes if plan is not None else max((layer.act_bytes for layer in report.layers), default=0)
    bars = [_bar("flash (weights)", report.flash_bytes, target.flash if target else None),
            _bar("RAM (arena)" if plan is not None else "RAM (largest layer output; no plan yet)", ram,
                 target.sram if target else None)]
    m = report.mcu
    if m is not None and m.core:
        bars += [_bar(f"flash (model code + weights on {m.core})", m.flash, target.flash if target else None),
                 _bar(f"RAM (model data + bss on {m.core})", m.ram, target.sram if target else None)]
    if m is not None and m.tflm_arena is not None:
        bars.append(_bar("RAM (TFLite Micro arena, same model)", m.tflm_arena, target.sram if target else None))
    return _ENV.get_template("report.html.j2").render(
        r=report, rows=report.rows(), header=report.columns(), totals=report.totals(), bars=bars, plan=plan,
        boxes=timeline_boxes(plan) if plan is not None else [], width=WIDTH, height=HEIGHT, target=target,
        quant_summary=report.quant_summary() if report.quant else "", quant_header=report.QUANT_HEADER,
        quant_rows=report.quant_rows() if report.quant else [],
        version=__version__, human_bytes=human_bytes)
