"""Smoke tests of benchmarks/run.py: every benchmark runs end to end at toy size and writes its tables.

No timing is asserted: the figures depend on the machine. What is checked is that each benchmark runs,
reports its figures, and that the contenders it compares agree where they must (same decoded tokens,
the kept checkpoint re-scored from its file).
"""

from pathlib import Path

import torch

from benchmarks import run as bench

TINY_SOLVE = ["data.length=4", "data.batch_size=64", "model.n_layer=1", "model.n_head=2",
              "model.d_model=32", "model.dropout=0.0", "model.optimizer.lr=3e-3",
              "trainer.max_steps=40", "trainer.val_check_interval=20"]


def test_step_benchmark_runs_every_contender(tmp_path):
    section = bench.bench_step(steps=4, rounds=1, warmup=1, variants=False)
    for name in ("lightning", "plain", "seed_style"):
        assert section.figures[f"step_ms_{name}"] > 0
    assert "x seed-style" in section.markdown


def test_seed_style_dataset_yields_training_pairs():
    data = bench.SeedStyleDataset()
    x, y = data[3]
    assert x.shape == y.shape == (11,)
    assert torch.equal(y[5:], x[:6].sort().values)  # the targets are the sorted input
    assert torch.equal(data[3][0], x)  # item i is the same every time: seeded by its index


def test_time_to_solve_reports_and_rescores_the_kept_checkpoint(tmp_path):
    res = bench.time_to_solve(TINY_SOLVE, tmp_path, max_seconds=60)
    assert [h[0] for h in res["history"]] == [20, 40][:len(res["history"])]
    correct, total, name = res["kept"]
    assert total > 0 and 0 <= correct <= total and name.endswith(".ckpt")
    if res["seconds"] is not None:  # stopped at the first solve: the kept checkpoint is that one
        assert res["history"][-1][2] == 1.0 and correct == total


def test_decode_benchmark_ways_agree():
    section = bench.bench_decode(n=200, repeats=1, n_layer=1, d_model=32)
    assert "NO" not in section.markdown  # every way decoded the same tokens
    assert section.figures["decode_speedup_sdpa"] > 0


def test_efficiency_and_results_file(tmp_path):
    flops = bench.step_flops(n_params=100, n_layer=1, d_model=8, batch=2, block=3)
    assert flops == 6 * 100 * 6 + 12 * 1 * 8 * 3 * 6
    assert bench.matmul_peak(size=64, repeats=1) > 0
    out = tmp_path / "RESULTS.md"
    sec = bench.Section("decode", "| a |\n|---|", {"decode_speedup_manual": 7.0})
    bench.write_results([sec], "python -m benchmarks.run decode", out, bench.judge(sec.figures))
    text = out.read_text()
    assert "torch" in text and "intra-op threads" in text and "| a |" in text
    bench.write_results([bench.Section("step", "STEP", {})], "python -m benchmarks.run step", out)
    text = out.read_text()
    assert "STEP" in text and "| a |" in text  # the other sections are kept
    assert "7.0x" in text and Path(out).exists()
