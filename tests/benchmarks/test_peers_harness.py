"""The peer benchmark's own harness on a tiny bundle: servers start, load runs in interleaved
rounds, CPU is counted, ratios come out. The peers that need the `bench` extra are reported as
skipped when absent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_harness_measures_this_service_and_the_naive_endpoint(
    built: dict[str, Path], tmp_path: Path
) -> None:
    data = tmp_path / "data" / "vi-unlabeled"
    data.mkdir(parents=True)
    (data / "a.txt").write_text("tốt lắm\nrất tệ, không bao giờ quay lại\nbình thường\n")
    out = tmp_path / "peers.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "peers.py")]
    command += ["--bundle", str(built["vi-sentiment"]), "--data", str(tmp_path / "data")]
    command += ["--texts", "30", "--concurrency", "1", "4", "--seconds", "1", "--warmup", "0.5"]
    command += ["--peers", "smallglot", "naive", "--rounds", "2", "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    for peer in ("smallglot", "naive"):
        for level in ("1", "4"):
            row = result["peers"][peer][level]
            assert row["errors"] == 0
            assert row["texts_per_s"] > 0
            assert row["cpu_s_per_1000_texts"] > 0
            assert len(row["rounds"]) == 2  # interleaved rounds, the median one shown
            assert row["texts_per_s"] in [r["texts_per_s"] for r in row["rounds"]]
    assert set(result["ratios_of_smallglot"]["4"]) == {"offline", "naive"}
    assert result["p50_c1_over_one_text"] > 0
    table = out.with_suffix(".md").read_text()
    assert "| 4 | " in table
    assert "vs naive" in table
