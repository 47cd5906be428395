"""Chains through the command line: parents run first, a child continues from its parent's final state, a chain
killed midway resumes to the same records, and a child whose parent failed is reported and not run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness import spec, store, train


def chain_study(experiments: Path, batch_first: int = 32) -> None:
    doc = {"study": "chain", "title": "t", "question": "q", "seeds": [0],
           "config": {"data": {"dataset": "digits", "train_per_class": 20, "test_per_class": 10},
                      "loss": {"name": "contrastive"}, "train": {"batch_size": 32, "epochs": 1, "eval_epochs": [1]},
                      "eval": {"metrics": ["precision_at_1"]}},
           "matrix": {"loss": [{"label": "contrastive", "set": {"loss": {"name": "contrastive"}}},
                               {"label": "triplet", "set": {"loss": {"name": "triplet_margin"}}}],
                      "budget": [{"label": 1, "set": {"train.epochs": 1, "train.eval_epochs": [1],
                                                      "train.batch_size": batch_first}},
                                 {"label": 2, "set": {"train.epochs": 2, "train.eval_epochs": [2]}}]},
           "chains": [{"axes": ["loss", "budget"]}],
           "profiles": {p: {"description": p} for p in spec.PROFILES}}
    (experiments / "chain.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def records(results: Path) -> dict:
    return {r.run_id: (r.status, r.metrics, [p.loss for p in r.loss_curve])
            for r in map(store.read, (results / "chain" / "smoke").glob("*.json"))}


@pytest.fixture
def chain(experiments, monkeypatch):
    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", experiments)
    chain_study(experiments)
    return spec.load("chain", "smoke", experiments)


def test_a_chain_runs_parents_first_and_each_child_continues_its_parent(chain, run_cli, tmp_path):
    code, _, err = run_cli("run", "chain", "--profile", "smoke", "--results", tmp_path, "--no-progress")
    assert code == 0, err
    assert "ran 4 runs" in err
    done = {r.run_id: r for r in map(store.read, (tmp_path / "chain" / "smoke").glob("*.json"))}
    assert len(done) == 4 and all(r.status == "ok" for r in done.values())
    for run in chain.runs:
        assert done[run.run_id].config["train"].get("init") == run.parent
    # Only runs that others continue from keep a final state, hidden and never a record.
    kept = {p.name for p in (tmp_path / "chain" / "smoke").glob(".*.state")}
    assert kept == {f".{r.parent}.state" for r in chain.runs if r.parent}
    # verify reruns the chain in order in a scratch folder, each child from its rerun parent: bit-identical.
    code, out, err = run_cli("verify", "chain", "--profile", "smoke", "--results", tmp_path, "--tolerance", "0")
    assert code == 0, out + err
    assert "every rerun number equal to its record, bit for bit" in out


def test_a_chain_killed_midway_resumes_to_the_same_records(chain, run_cli, tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    assert run_cli("run", "chain", "--profile", "smoke", "--results", whole, "--no-progress")[0] == 0
    last = chain.runs[3]  # the end of the chain: triplet, two epochs, continuing the three runs before it
    real = train.Trainer.train_epoch

    def killed(self, epoch, *args, **kwargs):
        if self.run.run_id == last.run_id and epoch == 2:  # after its first epoch's checkpoint
            raise KeyboardInterrupt
        return real(self, epoch, *args, **kwargs)

    monkeypatch.setattr(train.Trainer, "train_epoch", killed)
    code, _, err = run_cli("run", "chain", "--profile", "smoke", "--results", tmp_path / "cut", "--no-progress")
    assert code == 130 and "interrupted" in err
    assert len(records(tmp_path / "cut")) == 3
    monkeypatch.setattr(train.Trainer, "train_epoch", real)
    assert run_cli("run", "chain", "--profile", "smoke", "--results", tmp_path / "cut", "--no-progress")[0] == 0
    assert records(tmp_path / "cut") == records(whole)


def test_a_child_whose_parent_failed_is_reported_in_one_line_and_not_run(experiments, monkeypatch, run_cli,
                                                                         tmp_path):
    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", experiments)
    chain_study(experiments, batch_first=1)  # batch 1: no positive pair, the first run of each chain fails
    code, _, err = run_cli("run", "chain", "--profile", "smoke", "--results", tmp_path, "--no-progress")
    assert code == 0
    assert err.count("not run: its parent run") == 3  # the rest of the first chain and all of the second
    assert sorted(s for s, _, _ in records(tmp_path).values()) == ["failed"]
    code, _, err = run_cli("run", "chain", "--profile", "smoke", "--results", tmp_path, "--no-progress")
    assert "not run:" in err and "failed (no batch of epoch 1 had a positive pair" in err
    assert len(records(tmp_path)) == 1
