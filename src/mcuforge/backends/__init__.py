"""Backends: IR -> files. Each lowers the IR through one table of per-op lowerings."""
from __future__ import annotations

import os
import tempfile


def write_atomic(path, data: bytes) -> str:
    """Write `data` to `path` through a temporary file beside it, so a failure leaves nothing."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path
