"""The TFLite backend: .tflite flatbuffers that LiteRT and TFLite Micro run, with our memory plan
as TFLite Micro's offline plan (emit.py); runtime.py runs files in TFLite Micro for measurements."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..base import Backend
from .emit import save_tflite
from .legalize import LEGALIZE
from .plan import scratch_bytes


@dataclass(frozen=True)
class TFLiteOptions:
    # Whether the file carries our memory plan as TFLite Micro's offline plan: None when the
    # memory-plan pass ran, False never (TFLite Micro plans), True always (planned for the file).
    offline_plan: bool | None = None


def write(graph, out: Path, ctx, options: TFLiteOptions, prefix: str) -> Path:
    return Path(save_tflite(graph, out / f"{prefix}.tflite", plan=ctx.plan, offline_plan=options.offline_plan))


BACKEND = Backend("tflite", write, legalize=LEGALIZE, scratch=scratch_bytes, options=TFLiteOptions)
