"""plan: shards are disjoint and cover the matrix exactly once; recorded runs are skipped, failed ones kept."""

from __future__ import annotations

import pytest

from tests.conftest import fake_record
from harness import plan, spec, store
from harness.errors import HarnessError


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16])
def test_shards_cover_the_matrix_exactly_once(count):
    # runs outside any chain (a chain stays whole in one shard: tested below)
    runs = [r for r in spec.load("loss_epochs", "full").runs if r.axes.get("protocol") != "original"]
    slices = [plan.shard(runs, i, count) for i in range(1, count + 1)]
    ids = [r.run_id for part in slices for r in part]
    assert sorted(ids) == sorted(r.run_id for r in runs)
    assert max(len(p) for p in slices) - min(len(p) for p in slices) <= 1


@pytest.mark.parametrize("text", ["0/0", "3/2", "0/4", "1/0", "a/b", "1-2", "", "-1/2"])
def test_bad_shards(text):
    with pytest.raises(HarnessError, match="expected i/n"):
        plan.parse_shard(text)


def test_recorded_runs_are_skipped_and_failed_ones_kept_unless_asked(tmp_path):
    study = spec.load("loss_epochs", "smoke")
    first, second = study.runs[:2]
    store.write(tmp_path, fake_record(first.config_dict(), "ok"))
    store.write(tmp_path, fake_record(second.config_dict(), "failed"))
    todo = plan.make(study, tmp_path).todo
    assert first not in todo and second not in todo and len(todo) == len(study.runs) - 2
    retry = plan.make(study, tmp_path, rerun_failed=True)
    assert second in retry.todo and first not in retry.todo


def chained(runs: list[spec.Run]) -> list[spec.Run]:
    """The runs as one chain per seed, in reverse matrix order (children listed before their parents)."""
    from tests.conftest import with_config

    out, previous = [], {}
    for run in runs:
        parent = previous.get(run.seed)
        if parent is not None:
            run = with_config(run, run.config.model_copy(
                update={"train": run.config.train.model_copy(update={"init": parent.run_id})}))
        previous[run.seed] = run
        out.append(run)
    return out[::-1]


@pytest.mark.parametrize("count", [2, 3])
def test_a_chain_stays_in_one_shard_and_parents_come_first(count):
    runs = chained([r for r in spec.load("loss_epochs", "smoke").runs
            if "loss" in r.axes and r.axes.get("protocol") != "original"])
    slices = [plan.shard(runs, i, count) for i in range(1, count + 1)]
    assert sorted(r.run_id for part in slices for r in part) == sorted(r.run_id for r in runs)
    for part in slices:
        ids = {r.run_id for r in part}
        assert all(r.parent is None or r.parent in ids for r in part)  # the whole chain, or none of it
    ordered = plan.parents_first(runs)
    position = {r.run_id: i for i, r in enumerate(ordered)}
    assert all(r.parent is None or position[r.parent] < position[r.run_id] for r in ordered)
