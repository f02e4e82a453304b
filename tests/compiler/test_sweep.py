"""`mcuforge sweep`: the digits CNN under several schemes, scored by a user function, serially and
on an executor; the float point's accuracy is torch's, the quantized ones stay close to it."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from mcuforge import zoo
from mcuforge.compiler.cli import main
from mcuforge.compiler.sweep import SCHEMES, sweep
from mcuforge.errors import UsageError

DIGITS = load_digits()
X = (DIGITS.images / 16.0 - 0.3).astype(np.float32)[:, None]
Y = DIGITS.target
TEST = slice(1500, 1560)


def accuracy(runner) -> float:
    """Top-1 accuracy on 60 held-out digits (what a user's --eval function looks like)."""
    return 100 * float(np.mean([np.argmax(runner(x[None])[0]) == y for x, y in zip(X[TEST], Y[TEST])]))


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    torch.set_num_threads(1)  # batches of 32 8x8 images: more threads only add contention
    model, example = zoo.get("digits_cnn")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(X[:1500]), torch.from_numpy(Y[:1500])
    model.train()
    for _ in range(3):
        for idx in torch.randperm(len(x)).split(32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        torch_acc = 100 * float((model(torch.from_numpy(X[TEST])).argmax(1).numpy() == Y[TEST]).mean())
    return model, example, torch_acc


def test_sweep_serial_and_threaded(trained):
    model, example, torch_acc = trained
    schemes = ["float", "int8", "int16x8", "int8+kmeans4"]
    kw = {"example_inputs": example, "calibration": X[:32]}
    serial = sweep(model, schemes, accuracy, **kw)
    with ThreadPoolExecutor(2) as pool:
        threaded = sweep(model, schemes, accuracy, executor=pool, **kw)
    assert serial == threaded
    p = {pt.scheme: pt for pt in serial}
    assert [pt.scheme for pt in serial] == schemes
    assert torch_acc > 80 and p["float"].accuracy == pytest.approx(torch_acc, abs=1.0)
    assert p["int8"].accuracy >= torch_acc - 3 and p["int16x8"].accuracy >= torch_acc - 3
    n_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert p["float"].flash_bytes >= 4 * n_weights > p["int8"].flash_bytes >= n_weights > p["int8+kmeans4"].flash_bytes
    assert p["float"].arena_bytes == 4 * p["int8"].arena_bytes  # same plan, 4-byte floats against int8


def test_unknown_scheme_and_missing_calibration(trained):
    model, example, _ = trained
    with pytest.raises(UsageError, match="unknown scheme"):
        sweep(model, ["int7"], accuracy, example_inputs=example)
    with pytest.raises(UsageError, match="calibration"):
        sweep(model, ["int8"], accuracy, example_inputs=example)
    assert {"float", "int8", "int16x8", "int8+pow2"} <= set(SCHEMES)


@pytest.mark.parametrize("jobs", ["1", "2"])  # 2: a process pool of spawned workers (forked ones hang in torch)
def test_cli_prints_the_table_and_writes_the_plot(tmp_path, capsys, jobs):
    (tmp_path / "net.py").write_text(
        "import torch\nfrom mcuforge import zoo\n\ndef make():\n    torch.manual_seed(1)\n"
        "    return zoo.get('digits_cnn')[0]\n\nexample_inputs = (torch.zeros(1, 1, 8, 8),)\n")
    (tmp_path / "score.py").write_text(
        "import numpy as np\nfrom sklearn.datasets import load_digits\n\n"
        "def top1(runner):\n    d = load_digits()\n    x = (d.images[:50] / 16.0 - 0.3).astype(np.float32)\n"
        "    return float(np.mean([np.argmax(runner(i[None, None])[0]) == t for i, t in zip(x, d.target)]))\n")
    np.savez(tmp_path / "calib.npz", X[:32])
    out = tmp_path / "sweep.html"
    assert main(["sweep", f"{tmp_path}/net.py:make", "--eval", f"{tmp_path}/score.py:top1", "--schemes",
                 "float,int8", "--calibration", str(tmp_path / "calib.npz"), "-o", str(out), "--jobs", jobs]) == 0
    table = capsys.readouterr().out
    torch.manual_seed(1)
    model = zoo.get("digits_cnn")[0].eval()
    with torch.no_grad():
        want = float((model(torch.from_numpy(X[:50])).argmax(1).numpy() == Y[:50]).mean())
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
    assert set(rows) == {"float", "int8"} and float(rows["float"][3]) == pytest.approx(want, abs=0.021)
    page = out.read_text()
    assert page.count("<circle") == 2 and "<svg" in page and "int8</td>" in page


@pytest.fixture(scope="module")
def dask_cluster():
    """A dask.distributed cluster of two worker processes (spawned) on this machine."""
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


def test_sweep_on_a_dask_cluster(tmp_path, trained, dask_cluster):
    """The same points as the serial sweep, computed on the cluster's two workers."""
    from distributed import Client
    model, example, _ = trained
    (tmp_path / "score.py").write_text(  # a reference the workers import: functions of test files are not
        "import numpy as np\nfrom sklearn.datasets import load_digits\n\n"
        "def top1(runner):\n    d = load_digits()\n    x = (d.images[1500:1560] / 16.0 - 0.3).astype(np.float32)\n"
        "    return 100 * float(np.mean([np.argmax(runner(i[None, None])[0]) == t for i, t in zip(x, d.target[1500:])]))\n")
    kw = {"example_inputs": example, "calibration": X[:32]}
    schemes = ["float", "int8", "int8+pow2"]
    with Client(dask_cluster) as client:
        on_cluster = sweep(model, schemes, f"{tmp_path}/score.py:top1", executor=client.get_executor(), **kw)
        ran_on = client.run(lambda: True)
    assert len(ran_on) == 2  # two worker processes answered
    assert on_cluster == sweep(model, schemes, accuracy, **kw)  # score.py computes accuracy()


def test_cli_scheduler(tmp_path, capsys, dask_cluster):
    (tmp_path / "score.py").write_text("def one(runner):\n    return 1.0\n")
    assert main(["sweep", "zoo:digits_cnn", "--eval", f"{tmp_path}/score.py:one", "--schemes", "float",
                 "--scheduler", dask_cluster.scheduler_address]) == 0
    assert "float" in capsys.readouterr().out
    assert main(["sweep", "zoo:digits_cnn", "--eval", f"{tmp_path}/score.py:one", "--schemes", "float",
                 "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err
