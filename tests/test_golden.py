"""Golden text of the IR after each pass of the "deploy" pipeline, on a small model.

Refresh with `pytest tests/test_golden.py --update-golden` and review the diff like code.
"""
import io

import torch

import mcuforge
from mcuforge.passes.manager import PrintIR
from mcuforge.passes.pipelines import PIPELINES


class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pad = torch.nn.ZeroPad2d((1, 1, 1, 1))
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.bn.running_mean.uniform_(-1, 1)
        self.bn.running_var.uniform_(0.5, 2)
        self.bn.weight.data.uniform_(0.5, 2)
        self.drop = torch.nn.Dropout(0.2)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(self.pad(x))))
        y = self.drop(y) + y
        return self.fc(y.mean((2, 3)))


def test_ir_after_each_pass(golden):
    torch.manual_seed(0)
    out = io.StringIO()
    mcuforge.compile(Small().eval(), (torch.randn(1, 3, 6, 6),), emit=(), passes="deploy",
                     instrumentations=[PrintIR(stream=out)])
    golden("small_default_pipeline.txt", out.getvalue())
    assert len(PIPELINES["deploy"]) == out.getvalue().count("IR after")
