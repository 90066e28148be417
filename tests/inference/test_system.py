"""The prediction service as a system: its spec and settings, ``ptr run inference --simulate`` as
a user runs it, and the benchmark at a tiny size (its keys, and its exactly-once figures)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from protocols.errors import ConfigError
from systems import catalog
from systems.inference import SYSTEM

ROOT = Path(__file__).resolve().parents[2]


def test_the_catalog_has_inference_and_its_tree() -> None:
    system = catalog.get("inference")
    settings = system.settings(overrides={"workers": 3, "queue_url": "nats://127.0.0.1:4222/X"})
    tree = system.tree(settings)
    assert [c.id for c in tree.children] == ["workers", "dispatcher", "http"]
    assert tree.children[1].args["pool_size"] == 3
    assert tree.children[1].args["queue_url"] == "nats://127.0.0.1:4222/X"
    assert "/predictions" in system.edges(settings)[0]  # type: ignore[misc]
    with pytest.raises(ConfigError, match="'max_batch'"):
        SYSTEM.settings(overrides={"max_batch": 0})


def test_ptr_run_inference_simulate_and_ptr_inspect_show_workers_batches_and_depth(
        tmp_path) -> None:
    env = {**os.environ, "PTR_RUN_DIR": str(tmp_path / "run")}
    run = subprocess.Popen(
        [sys.executable, "-m", "systems.cli", "run", "inference", "--simulate", "--for", "8",
         "--set", f"data_dir={tmp_path}", "--set", "http_port=0", "--set", "simulate_per_s=15"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        assert run.stdout is not None
        lines = []
        for line in run.stdout:                    # the first status line: it is up
            lines.append(line)
            if "queue depth" in line:
                break
        inspected = subprocess.run(
            [sys.executable, "-m", "systems.cli", "inspect", "--system", "inference"],
            capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
        rest, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    out = "".join(lines) + rest
    assert run.returncode == 0, err[-3000:]
    for child in ("workers", "dispatcher", "http"):
        assert f"/inference/{child} " in out
    completed = [int(n) for n in re.findall(r"completed (\d+)", out)]
    assert completed and completed[-1] >= 10 and completed == sorted(completed), out
    assert re.search(r"queue depth \d+, in flight \d+; workers \[worker-1:", out)
    assert re.search(r"simulated clients sent (\d+): queued \d+, cached \d+, shed 0, "
                     r"rejected [1-9]", out), out
    assert out.rstrip().endswith("stopped; 0 actor processes left")
    assert inspected.returncode == 0, inspected.stderr
    shown = inspected.stdout
    assert "worker-1" in shown and "worker-2" in shown and "InferenceWorker" in shown, shown
    assert re.search(r"^queue depth: \d+$", shown, re.M) and "batch sizes: {" in shown, shown


def test_the_benchmark_runs_small_and_loses_nothing_under_kills() -> None:
    from systems.bench.registry import BENCHMARKS
    _, run = BENCHMARKS["inference"]
    result = run(images=8, clients=4, kills=2, chaos_images=16, upload_files=1, upload_mb=1,
                 model=False, rounds=2)
    for key in ("batched_per_s", "batch1_per_s", "fixed_per_s", "batched_p95_ms",
                "batch1_p95_ms", "fixed_p95_ms", "upload_mb_per_s", "bare_write_mb_per_s"):
        assert result[key] > 0, key
    assert result["batch1_sizes"] == {1: 8}                 # 2 rounds of 4 images, one by one
    assert result["batching_gain"] == pytest.approx(
        result["batched_per_s"] / result["batch1_per_s"], rel=0.01)
    assert result["kills"] == 2 and result["requeued_after_kills"] >= 2
    assert result["jobs_lost"] == 0 and result["results_duplicated"] == 0
    assert result["upload_statuses"] == [200]
    assert set(result["meets_floors"]) == {"batching_gain", "batched_p95_no_worse_than_batch1",
                                           "jobs_lost", "results_duplicated"}
