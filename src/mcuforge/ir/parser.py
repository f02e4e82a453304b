"""Reads the text form written by `printer.print_graph` back into a Graph.

A small tokenizer and a recursive-descent reader; errors name the line and column. Result types
are taken from the text and then checked by the verifier, so a hand-edited file with a wrong
shape is rejected with the rule it breaks.
"""
from __future__ import annotations

import base64
import json
import re

import numpy as np

from ..errors import ParseError
from .graph import Graph, Value
from .types import DType, QuantParams, TensorType
from .verify import verify

_TOKEN = re.compile(r"""
   (?P<ws>\s+|//[^\n]*)
  |(?P<blob>(?:b64|sha)"[^"]*")
  |(?P<str>"(?:[^"\\]|\\.)*")
  |(?P<val>%[A-Za-z0-9_.]+)
  |(?P<sym>@[A-Za-z0-9_.]+)
  |(?P<num>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|inf\b|nan\b))
  |(?P<id>[A-Za-z_][A-Za-z0-9_]*)
  |(?P<arrow>->)
  |(?P<p>[()\[\]{}<>,=:])
""", re.X)


class _Reader:
    def __init__(self, text: str):
        self.text, self.toks, pos = text, [], 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                self.fail(f"unexpected character {text[pos]!r}", pos)
            if m.lastgroup != "ws":
                self.toks.append((m.lastgroup, m.group(), pos))
            pos = m.end()
        self.toks.append(("eof", "", len(text)))
        self.i = 0

    def fail(self, msg, pos=None):
        pos = self.toks[self.i][2] if pos is None else pos
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        raise ParseError(f"line {line}, column {col}: {msg}")

    def peek(self, kind=None, text=None) -> bool:
        k, t, _ = self.toks[self.i]
        return (kind is None or k == kind) and (text is None or t == text)

    def take(self, kind=None, text=None) -> str:
        k, t, _ = self.toks[self.i]
        if not self.peek(kind, text):
            self.fail(f"expected {text or kind}, found {t!r}" if t else f"expected {text or kind}, found end of text")
        self.i += 1
        return t

    def accept(self, text) -> bool:
        if self.peek(text=text):
            self.i += 1
            return True
        return False

    def seq(self, item, close):
        out = []
        while not self.peek(text=close):
            out.append(item())
            if not self.accept(","):
                break
        self.take(text=close)
        return out

    # ---------------------------------------------------------------- pieces
    def scalar(self):
        if self.peek("num"):
            t = self.take()
            return float(t) if any(c in t for c in ".eEn") else int(t)
        if self.peek("str"):
            return json.loads(self.take())
        if self.peek("id", "true") or self.peek("id", "false"):
            return self.take() == "true"
        self.fail(f"expected a value, found {self.toks[self.i][1]!r}")

    def attr_value(self):
        if self.accept("["):
            return self.seq(self.attr_value, "]")
        return self.scalar()

    def type(self) -> TensorType:
        name = self.take("id")
        try:
            dtype = DType(name)
        except ValueError:
            self.fail(f"unknown dtype {name!r}")
        self.take(text="[")
        shape = self.seq(lambda: int(self.take("num")), "]")
        quant = None
        if self.accept("<"):
            fields = {}
            for _ in range(3):
                key = self.take("id")
                self.take(text="=")
                fields[key] = self.attr_value()
                if not self.accept(","):
                    break
            self.take(text=">")
            quant = QuantParams(fields["scale"], fields["zp"], fields.get("axis"))
        return TensorType(tuple(shape), dtype, quant)

    def array(self, t: TensorType, name: str) -> np.ndarray:
        """A constant's (or a state's initial) data of type `t`: base64 or a list of values."""
        if self.peek("blob"):
            blob = self.take()
            if blob.startswith("sha"):
                self.i -= 1
                self.fail("constant data was elided (printed with elide=True); it cannot be parsed back")
            raw = base64.b64decode(blob[4:-1])
            arr = np.frombuffer(raw, dtype=t.dtype.np.newbyteorder("<")).astype(t.dtype.np)
        else:
            self.take(text="[")
            arr = np.array(self.seq(self.scalar, "]"), dtype=t.dtype.np)
        if arr.size != t.numel:
            self.fail(f"constant %{name} has {arr.size} elements, its type needs {t.numel}")
        return arr.reshape(t.shape)


def parse(text: str) -> Graph:
    """Parse the text form of one graph; the result is verified."""
    r = _Reader(text)
    r.take("id", "graph")
    g = Graph(r.take("sym")[1:])
    env: dict[str, Value] = {}

    def use():
        name = r.take("val")[1:]
        if name not in env:
            r.i -= 1
            r.fail(f"%{name} is used before it is defined")
        return env[name]

    def define(name, v):
        if name in env:
            r.fail(f"%{name} is defined twice")
        g.rename(v, name)
        env[name] = v

    r.take(text="(")

    def graph_input():
        name = r.take("val")[1:]
        r.take(text=":")
        define(name, g.add_input(name, r.type()))
    r.seq(graph_input, ")")
    r.take("arrow")
    r.take(text="(")
    out_names = r.seq(lambda: r.take("val")[1:], ")")
    r.take(text="{")
    while not r.peek("id", "return"):
        if r.accept("update"):
            read = use()
            r.take(text="=")
            if g.state(read) is None:
                r.i -= 2
                r.fail(f"%{read.name} is not a state")
            g.set_state_write(read, use())
            continue
        names = [r.take("val")[1:]]
        while r.accept(","):
            names.append(r.take("val")[1:])
        r.take(text="=")
        op = r.take("id")
        if op in ("const", "state"):
            t = r.type()
            arr = r.array(t, names[0])
            define(names[0], g.const(arr, names[0], quant=t.quant) if op == "const" else g.add_state(names[0], t, arr))
            continue
        r.take(text="(")
        args = r.seq(use, ")")
        attrs = {}
        if r.accept("{"):
            def attr():
                k = r.take("id")
                r.take(text="=")
                attrs[k] = r.attr_value()
            r.seq(attr, "}")
        r.take(text=":")
        types = [r.type()]
        while r.accept(","):
            types.append(r.type())
        meta = {}
        if r.accept("loc"):
            r.take(text="(")
            meta["source"] = json.loads(r.take("str"))
            r.take(text=")")
        if len(types) != len(names):
            r.fail(f"{len(names)} results but {len(types)} types")
        try:
            node = g.add_node(op, args, attrs, out_types=types, meta=meta)
        except KeyError as e:
            r.fail(str(e.args[0]))
        for n, v in zip(names, node.outputs):
            define(n, v)
    r.take("id", "return")
    rets = [] if r.peek(text="}") else [use()]
    while r.accept(","):
        rets.append(use())
    r.take(text="}")
    r.take("eof")
    if [v.name for v in rets] != out_names:
        raise ParseError(f"graph header lists outputs {out_names}, return has {[v.name for v in rets]}")
    g.outputs = rets
    verify(g)
    return g
