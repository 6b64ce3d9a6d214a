"""The benchmark's logic, never its timings: the suite's layers, the targets summary, the
table, the JSON report and the chart.

The suite is checked against an independent description of torchvision's networks at
224x224 (their configs and known activation sizes), not against npconv's formula.
"""

import json
import os
import sys

import pytest
import torch

import npconv
from npconv import bench, cli
from npconv.suite import LAYERS, NETWORKS, QUICK, TARGET_BATCHES, TARGETS, Layer, suite_layers

# ---- torchvision's networks, as (C_in, size, C_out, kernel, stride, padding, groups) -> output size


def resnet_convs(groups=1, width_per_group=64):
    """resnet50 (v1.5: the stride on the 3x3) or, with groups=32 and width 4, resnext50_32x4d."""
    convs = [((3, 224, 64, 7, 2, 3, 1), 112)]  # stem, then a 3x3/2 max pool to 56
    c_in = 64
    for planes, blocks, size_in, size_out in ((64, 3, 56, 56), (128, 4, 56, 28), (256, 6, 28, 14), (512, 3, 14, 7)):
        width, c_out = planes * width_per_group // 64 * groups, planes * 4
        for block in range(blocks):
            size, stride = (size_in, size_in // size_out) if block == 0 else (size_out, 1)
            convs.append(((c_in, size, width, 1, 1, 0, 1), size))
            convs.append(((width, size, width, 3, stride, 1, groups), size_out))
            convs.append(((width, size_out, c_out, 1, 1, 0, 1), size_out))
            if block == 0:  # the shortcut's projection
                convs.append(((c_in, size, c_out, 1, stride, 0, 1), size_out))
            c_in = c_out
    return convs


def vgg16_convs():
    convs, c_in = [], 3
    for size, widths in ((224, (64, 64)), (112, (128, 128)), (56, (256,) * 3), (28, (512,) * 3), (14, (512,) * 3)):
        for c_out in widths:
            convs.append(((c_in, size, c_out, 3, 1, 1, 1), size))
            c_in = c_out
    return convs


def mobilenet_v2_convs():
    convs = [((3, 224, 32, 3, 2, 1, 1), 112)]
    c_in, size = 32, 112
    # (expansion, channels, blocks, first stride, resolution after the stage)
    for t, c, n, s, size_out in ((1, 16, 1, 1, 112), (6, 24, 2, 2, 56), (6, 32, 3, 2, 28), (6, 64, 4, 2, 14),
                                 (6, 96, 3, 1, 14), (6, 160, 3, 2, 7), (6, 320, 1, 1, 7)):
        for block in range(n):
            hidden = c_in * t
            if t != 1:
                convs.append(((c_in, size, hidden, 1, 1, 0, 1), size))
            convs.append(((hidden, size, hidden, 3, s if block == 0 else 1, 1, hidden), size_out))
            convs.append(((hidden, size_out, c, 1, 1, 0, 1), size_out))
            c_in, size = c, size_out
    convs.append(((320, 7, 1280, 1, 1, 0, 1), 7))
    return convs


NETWORK_CONVS = {
    "resnet50": dict(resnet_convs()),
    "vgg16": dict(vgg16_convs()),
    "mobilenet_v2": dict(mobilenet_v2_convs()),
    "resnext50_32x4d": dict(resnet_convs(groups=32, width_per_group=4)),
}


def expected_group(network, shape):
    """The target group a conv of ``network`` belongs to, as the issue words them."""
    c_in, _, _, kernel, stride, _, groups = shape
    if network == "resnet50" and kernel > 1 and stride == 2:
        return "strided"
    if network in ("resnet50", "vgg16") and kernel == 3 and stride == 1 and groups == 1:
        return "3x3"
    if network in ("resnet50", "mobilenet_v2") and kernel == 1:
        return "1x1"
    if network == "mobilenet_v2" and groups == c_in > 1:
        return "depthwise"
    if network == "resnext50_32x4d" and groups > 1:
        return "grouped"
    return None


def shape(layer):
    return (layer.in_channels, layer.size, layer.out_channels, layer.kernel, layer.stride, layer.padding, layer.groups)


# ---- the suite


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: f"{layer.network} {layer.name}")
def test_layer_is_a_real_layer_of_its_network(layer):
    convs = NETWORK_CONVS[layer.network]
    assert shape(layer) in convs
    out = convs[shape(layer)]
    assert layer.geometry(2).out_shape == (2, layer.out_channels, out, out)  # npconv's checks pass
    assert layer.group == expected_group(layer.network, shape(layer))


@pytest.mark.parametrize("group", TARGETS)
def test_target_group_has_every_distinct_layer(group):
    expected = {(net, s) for net, convs in NETWORK_CONVS.items() for s in convs if expected_group(net, s) == group}
    assert {(layer.network, shape(layer)) for layer in LAYERS if layer.group == group} == expected


def test_known_activations():
    by_name = {layer.name: layer for layer in LAYERS}
    assert by_name["conv1 7x7/2"].geometry(1).out_shape == (1, 64, 112, 112)
    assert by_name["layer4 3x3/2 512"].geometry(1).out_shape == (1, 512, 7, 7)
    assert by_name["conv5_2 3x3 512"].geometry(8).out_shape == (8, 512, 14, 14)
    assert by_name["dw 3x3/2 576"].geometry(1).out_shape == (1, 576, 7, 7)
    assert by_name["pw 1x1 320->1280"].geometry(1).out_shape == (1, 1280, 7, 7)
    assert by_name["layer4 3x3/2 1024 g32"].geometry(1).out_shape == (1, 1024, 7, 7)


def test_layers_are_distinct_and_named_uniquely():
    assert len({shape(layer) for layer in LAYERS}) == len(LAYERS)
    assert len({layer.name for layer in LAYERS}) == len(LAYERS)
    assert set(NETWORKS) == set(NETWORK_CONVS)


def test_quick_names_exist_and_cover_every_target_group_and_network():
    quick = suite_layers(quick=True)
    assert sorted(layer.name for layer in quick) == sorted(QUICK)
    assert {layer.group for layer in quick} == set(TARGETS)
    assert {layer.network for layer in quick} == set(NETWORKS)
    assert suite_layers(networks=["vgg16"]) == [layer for layer in LAYERS if layer.network == "vgg16"]


# ---- summary, table, report


def row(group="3x3", ratio=1.0, batch=1, auto=True, layer="l", algo="im2col"):
    """A synthetic result row."""
    return {
        "network": "resnet50", "layer": layer, "group": group, "input_shape": [batch, 64, 56, 56],
        "weight_shape": [64, 64, 3, 3], "stride": 1, "padding": 1, "groups": 1, "batch": batch,
        "algo": algo, "auto": auto, "ms": 1.0, "gflops": 100.0, "peak": 0.5,
        "torch_ms": None if ratio is None else ratio, "ratio": ratio,
    }


def synthetic_report(rows):
    return {"threads": 2, "repeats": 3, "sgemm_gflops": 200.0, "versions": {"npconv": npconv.__version__},
            "rows": rows, "groups": bench.summarize(rows)}


SYNTHETIC_ROWS = [
    row("3x3", 2.0, batch=1), row("3x3", 0.5, batch=8, layer="m"),  # geomean 1.0
    row("3x3", 100.0, auto=False, algo="winograd"),  # not auto's choice
    row("3x3", 100.0, batch=4),  # not a target batch
    row("3x3", None, layer="no torch"),
    row("1x1", 1.9), row("1x1", 0.5, batch=8),  # geomean sqrt(0.95) = 0.975
    row(None, 0.1),  # in no group
]


def test_summarize_takes_auto_rows_at_target_batches():
    summary = {e["group"]: e for e in bench.summarize(SYNTHETIC_ROWS)}
    assert list(summary) == list(TARGETS)
    s3 = summary["3x3"]
    assert s3["geomean"] == pytest.approx(1.0)
    assert s3["target"] == TARGETS["3x3"].ratio
    assert s3["met"] is False and s3["margin"] == pytest.approx(1 / 1.2 - 1)
    assert s3["measured"] == 2
    assert s3["needed"] == len(TARGET_BATCHES) * sum(layer.group == "3x3" for layer in LAYERS)
    assert summary["1x1"]["geomean"] == pytest.approx(0.95**0.5) and summary["1x1"]["met"] is True
    assert summary["grouped"] == {**summary["grouped"], "geomean": None, "met": None, "margin": None, "measured": 0}


def test_format_summary_gives_verdicts():
    text = bench.format_summary(bench.summarize(SYNTHETIC_ROWS))
    lines = {line.split()[0]: line for line in text.splitlines()[2:]}
    assert "missed by 17%" in lines["3x3"] and "2/26 partial" in lines["3x3"] and ">= 1.20" in lines["3x3"]
    assert "met by 3%" in lines["1x1"]
    assert "no data" in lines["grouped"]


def test_format_table():
    rows = [row(ratio=1.5, algo="winograd"), row(ratio=None, auto=False)]
    lines = bench.format_table(rows).splitlines()
    assert "% peak" in lines[0] and "ratio" in lines[0]
    assert len({len(line) for line in lines}) == 1  # fixed-width columns
    assert "winograd*" in lines[2] and "64x56x56" in lines[2] and "50%" in lines[2] and lines[2].endswith("1.50")
    assert "im2col " in lines[3] and lines[3].endswith("-")


@pytest.fixture
def restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


TINY = Layer("test", "tiny 3x3", 4, 8, 6, 3, 1, 1, 1, "3x3")


def test_run_end_to_end(restore_torch_threads):
    report = bench.run([TINY], batches=(1, 2), repeats=1)
    assert json.loads(json.dumps(report)) == report
    assert {"threads", "repeats", "sgemm_gflops", "versions", "rows", "groups"} <= report.keys()
    assert report["threads"] == npconv.get_num_threads()
    assert report["versions"]["npconv"] == npconv.__version__
    assert [e["group"] for e in report["groups"]] == list(TARGETS)
    for batch in (1, 2):
        rows = [r for r in report["rows"] if r["batch"] == batch]
        assert sum(r["auto"] for r in rows) == 1
        assert {r["algo"] for r in rows} >= {"im2col"}
        assert all(r["ratio"] is not None and r["ms"] > 0 for r in rows)
        assert rows[0]["input_shape"] == [batch, 4, 8, 8]
    assert "tiny 3x3" in bench.format_report(report)


def test_run_on_frozen_weights(restore_torch_threads, monkeypatch):
    """``frozen``: npconv's calls get a frozen weight (torch the same values), and the report says so."""
    seen = []
    monkeypatch.setattr(bench, "conv2d", lambda x, w, **kw: seen.append(w.flags.writeable) or npconv.conv2d(x, w, **kw))
    report = bench.run([TINY], batches=(1,), repeats=1, algos=[], frozen=True)
    assert seen and not any(seen) and report["frozen"] is True
    assert "weights frozen (npconv.freeze)" in bench.format_report(report)
    assert "frozen" not in bench.format_report(bench.run([TINY], batches=(1,), repeats=1, algos=[]))


def test_run_always_times_autos_choice(restore_torch_threads):
    rows = bench.run([TINY], batches=(1,), repeats=1, algos=[])["rows"]
    assert [r["auto"] for r in rows] == [True]


def test_median_seconds_times_each_function_after_it_settles(monkeypatch):
    """On a fake clock: each function runs back to back until ``settle`` has passed, then once timed,
    in rotating and reversed orders."""
    clock, calls = [0.0], []

    def takes(name, seconds):
        def f():
            calls.append(name)
            clock[0] += seconds
        return f

    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])
    tick = 1 / 1024  # exact in binary, so the settle loop's count is too
    functions = [takes("a", tick), takes("b", 4 * tick), takes("c", 16 * tick)]
    assert bench.median_seconds(functions, repeats=6, settle=10 * tick) == [tick, 4 * tick, 16 * tick]
    # one warm-up call each; per round, a: 10 settle calls + 1 timed, b: 3 + 1, c: 1 + 1
    per_round = {"a": 11, "b": 4, "c": 2}
    orders = ["abc", "bca", "cab", "cba", "acb", "bac"]
    assert calls == list("abc") + [name for order in orders for name in order for _ in range(per_round[name])]


def test_plot_ratios_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [row("3x3", 1.3, batch=1), row("3x3", 0.7, batch=8), row(None, 0.4, layer="other")]
    bench.plot_ratios(synthetic_report(rows), tmp_path / "ratios.png")
    assert (tmp_path / "ratios.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_ratios_without_matplotlib_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'npconv\[bench\]'"):
        bench.plot_ratios(synthetic_report([row()]), tmp_path / "ratios.png")


# ---- the command line


def test_info_prints_version(capsys):
    cli.main(["info"])
    assert f"npconv {npconv.__version__}" in capsys.readouterr().out


@pytest.mark.parametrize("existing, expected", [
    (None, bench.MALLOC_TUNABLES),
    ("", bench.MALLOC_TUNABLES),
    ("glibc.malloc.arena_max=2", "glibc.malloc.arena_max=2:" + bench.MALLOC_TUNABLES),
    ("glibc.malloc.arena_max=2:" + bench.MALLOC_TUNABLES, "glibc.malloc.arena_max=2:" + bench.MALLOC_TUNABLES),
])
def test_timing_env_adds_malloc_tunables_to_the_users(existing, expected):
    environ = {"HOME": "/somewhere", "OPENBLAS_THREAD_TIMEOUT": "9"}
    if existing is not None:
        environ["GLIBC_TUNABLES"] = existing
    env = bench.timing_env(environ)
    assert env == {"HOME": "/somewhere", "OPENBLAS_THREAD_TIMEOUT": "4", "GLIBC_TUNABLES": expected}
    assert bench.timing_env(env) == env  # a second pass changes nothing: no endless re-execution


@pytest.mark.parametrize("preset", [False, True])
def test_use_timing_env_re_executes_only_without_it(monkeypatch, preset):
    for key in bench.TIMING_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    if preset:
        for key, value in bench.timing_env(os.environ).items():
            monkeypatch.setenv(key, value)
    calls = []
    monkeypatch.setattr(bench.os, "execve", lambda path, argv, env: calls.append((path, argv, env)))
    bench.use_timing_env()
    if preset:
        assert calls == []
    else:
        (path, argv, env), = calls
        assert path == sys.executable and argv == [sys.executable, *sys.orig_argv[1:]]
        assert env["OPENBLAS_THREAD_TIMEOUT"] == "4"
        assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:" + bench.MALLOC_TUNABLES


@pytest.fixture
def bench_cli(monkeypatch):
    """Run ``npconv bench`` in this process, ``bench.run`` replaced by a synthetic report; returns its calls."""
    for key, value in bench.timing_env(os.environ).items():
        monkeypatch.setenv(key, value)  # no re-execution
    calls = []

    def fake_run(layers, **kwargs):
        calls.append((layers, kwargs))
        return synthetic_report(SYNTHETIC_ROWS)

    monkeypatch.setattr(bench, "run", fake_run)
    return calls


def test_bench_cli_prints_report_and_writes_json(bench_cli, capsys, tmp_path):
    cli.main(["bench", "--quick", "--json", str(tmp_path / "r.json")])
    (layers, kwargs), = bench_cli
    assert layers == suite_layers(quick=True)
    assert kwargs["batches"] == (1,) and kwargs["repeats"] == 3 and kwargs["algos"] is None
    assert kwargs["frozen"] is False
    out = capsys.readouterr().out
    assert "sgemm peak 200 GFLOP/s" in out and "% peak" in out and "targets:" in out
    assert json.loads((tmp_path / "r.json").read_text()) == synthetic_report(SYNTHETIC_ROWS)


def test_bench_cli_frozen_passes_through(bench_cli, capsys):
    cli.main(["bench", "--quick", "--frozen"])
    (_, kwargs), = bench_cli
    assert kwargs["frozen"] is True


@pytest.mark.parametrize("args, message", [
    (["--algo", "nope"], "unknown --algo nope; choose from"),
    (["--network", "alexnet"], "unknown --network alexnet; choose from resnet50"),
])
def test_bench_cli_rejects_unknown_names(bench_cli, args, message):
    with pytest.raises(SystemExit, match=message):
        cli.main(["bench", *args])
    assert not bench_cli


def test_bench_cli_png_without_matplotlib_fails_before_timing(bench_cli, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(SystemExit, match="needs matplotlib"):
        cli.main(["bench", "--png", str(tmp_path / "r.png")])
    assert not bench_cli
