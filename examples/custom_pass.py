"""A user-defined pass, registered and run: drop the softmax at the end of a classifier.

    python examples/custom_pass.py

On a microcontroller the class is usually all that is wanted, and argmax does not change under
softmax, so the final softmax is work (and, in int8, precision) spent for nothing. The pass is a
declarative pattern: a softmax whose result is a graph output is replaced by its input.
"""
import numpy as np
import onnxruntime as ort
import torch

import mcuforge
from mcuforge.ir.pattern import Pat, Rule, rewrite
from mcuforge.passes import register


def _drop(graph, m):
    return m["logits"] if graph.is_output(m.root.output) else None


RULES = [Rule(Pat("softmax", [Pat.any("logits")]), _drop, "dropped_softmax")]


@register("drop-final-softmax")
def drop_final_softmax(graph, ctx) -> bool:
    """Removes a softmax whose result is a graph output (the argmax stays the same).

    Preconditions: none. Preserves: the argmax of every output; not the values.
    """
    return rewrite(graph, RULES, ctx)


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                                            torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x):
        return torch.softmax(self.head(self.features(x)), dim=1)


torch.manual_seed(4)
model, x = Classifier().eval(), torch.randn(16, 1, 8, 8) * torch.linspace(0.1, 10, 16).view(16, 1, 1, 1)
art = mcuforge.compile(model, (x,), passes="float,drop-final-softmax", out_dir="build/custom_pass")
print(art.report)
print("passes run:", [r.name for r in art.report.passes])
print("statistics:", dict(art.ctx.stats))
assert art.graph.count("softmax") == 0 and art.ctx.stats["drop-final-softmax.dropped_softmax"] == 1

with torch.no_grad():
    expected = model(x).numpy().argmax(1)
session = ort.InferenceSession(str(art.files["onnx"]), providers=["CPUExecutionProvider"])
(logits,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
print("classes, torch:", expected.tolist(), " ours (onnxruntime):", logits.argmax(1).tolist())
assert len(set(expected.tolist())) > 1 and np.array_equal(logits.argmax(1), expected)
