"""`harness gpu-check` in its small CPU setting: every check runs, the table says what each measured, the JSON
holds the same rows, and nothing is written under results/."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_the_gpu_check_runs_its_small_setting_on_a_cpu(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in the working folder but the JSON asked for
    out = tmp_path / "check.json"
    code, printed, err = run_cli("gpu-check", "--small", "--out", out)
    assert code == 0, printed + err
    checks = [line.split("  ")[0] for line in printed.splitlines()[2:]]
    assert checks == ["smoke profile", "bf16", "one epoch, loss_epochs", "--jobs on one device",
                      "evaluation, device against CPU", "peak memory"]
    assert "FAILED" not in printed and "1200 images" in printed and "largest metric difference 0.0e+00" in printed
    doc = json.loads(out.read_text())
    assert doc["setting"] == "small" and [r["check"] for r in doc["rows"]] == checks
    assert doc["rows"][2]["values"]["images_per_s"] > 0 and doc["rows"][3]["values"]["runs"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["check.json"]


def test_the_gpu_check_refuses_a_folder_for_its_json(tmp_path, run_cli):
    code, _, err = run_cli("gpu-check", "--small", "--out", tmp_path)
    assert code != 0 and "give a file name" in err
