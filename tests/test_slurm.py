"""harness slurm: every run in exactly one array task, a chain in one task, time limits above the estimates, and
`harness run --unit K` runs exactly the unit the task names."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from harness import plan, slurm, spec
from harness.errors import HarnessError


@pytest.fixture(scope="module")
def loss_epochs_full() -> spec.Study:
    return spec.load("loss_epochs", "full", components=False)


def units_of(path: Path) -> list[int]:
    return [int(n) for n in re.search(r"^UNITS=\((.*)\)$", path.read_text(), re.M).group(1).split()]


def test_the_arrays_cover_every_run_once_and_keep_each_chain_in_one_task(loss_epochs_full, tmp_path):
    paths = slurm.write(loss_epochs_full, tmp_path / "results", tmp_path / "out", 1.5, 8, io.StringIO())
    every = plan.units(loss_epochs_full.runs)
    numbers = [n for path in paths for n in units_of(path)]
    assert sorted(numbers) == list(range(1, len(every) + 1))  # each unit once
    assert sorted(r.run_id for n in numbers for r in every[n - 1]) == sorted(r.run_id for r in loss_epochs_full.runs)
    chains = [u for u in every if len(u) > 1]
    assert len(chains) == 36 and all(len(c) == 25 for c in chains)  # 5 losses x 5 budgets, one per seed
    for chain in chains:  # in order: each run continues the one before it
        assert chain[0].parent is None and all(b.parent == a.run_id for a, b in zip(chain, chain[1:]))
    for path in paths:
        text = path.read_text()
        count = len(units_of(path))
        assert f"#SBATCH --array=1-{count}\n" in text and '--unit "$unit"' in text and "--gres=gpu:1" in text


def test_each_time_limit_is_above_its_units_estimate_with_the_margin(loss_epochs_full, tmp_path):
    units, basis, hours = slurm.estimate_units(loss_epochs_full, tmp_path)
    assert "shared out by epochs" in basis and hours == "GPU-hours"
    declared = loss_epochs_full.spec.profiles["full"].estimate
    assert sum(u.high_h for u in units) == pytest.approx(declared.high)
    for margin in (1.0, 1.5, 3.0):
        for array in slurm.arrays(units, margin):
            assert all(u.high_h * margin <= array.limit_h for u in array.units)
            assert array.limit_h in slurm.LADDER
    chains = [u for u in units if len(u.runs) > 1]
    assert min(u.high_h for u in chains) > max(u.high_h for u in units if len(u.runs) == 1)  # longer limits


def test_run_unit_runs_exactly_the_unit_a_task_names(loss_epochs_full, tmp_path):
    every = plan.units(loss_epochs_full.runs)
    chain = next(k for k, u in enumerate(every, 1) if len(u) > 1)
    todo = plan.make(loss_epochs_full, tmp_path, unit_spec=str(chain)).todo
    assert [r.run_id for r in todo] == [r.run_id for r in every[chain - 1]]
    both = plan.make(loss_epochs_full, tmp_path, unit_spec=f"1-2,{chain}").todo
    assert len(both) == 2 + len(every[chain - 1])
    for bad in ("0", f"{len(every) + 1}", "2-1", "x", "1,,2"):
        with pytest.raises(HarnessError, match="--unit"):
            plan.make(loss_epochs_full, tmp_path, unit_spec=bad)


def test_no_record_and_no_declared_estimate_is_one_line(tmp_path):
    study = spec.load("loss_epochs", "smoke", components=False)
    with pytest.raises(HarnessError, match="no recorded run and no declared estimate"):
        slurm.write(study, tmp_path, tmp_path / "out", 1.5, 8, io.StringIO())
    with pytest.raises(HarnessError, match="--margin 0.5"):
        slurm.write(spec.load("loss_epochs", "full", components=False), tmp_path, tmp_path / "o", 0.5, 8,
                    io.StringIO())
