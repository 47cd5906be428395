"""The original / faithful / corrected table on hand-made frames: which runs each protocol's cell reads, the epoch
rules (last, best test epoch, best validation epoch, the faithful run's epoch), selection, the paired difference
and its interval, and the original's number found through the row labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.errors import ConfigError, HarnessError
from harness.render import protocols
from harness.report import ProtocolCell, ProtocolClaim, ProtocolSpec

from tests.conftest import REPO
from tests.conftest import frame, pm


def claim(**fields) -> ProtocolClaim:
    return ProtocolClaim(**{"label": "acc", "metric": "acc", "theirs": "acc_pct", **fields})


def spec(claims: list[ProtocolClaim], **fields) -> ProtocolSpec:
    return ProtocolSpec(**{"file": "f.csv", "source": "s", "caption": "c", "rows": ["loss"],
                           "their_rows": {"loss": "method"}, "claims": claims, **fields})


def difference(*pairs: tuple[float, float]) -> str:
    """corrected - faithful per seed: mean and 95% t-interval in percentage points, computed here with scipy."""
    d = np.array([c - f for f, c in pairs]) * 100
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return f"${d.mean():+.2f}$ [${d.mean() - half:+.2f}$, ${d.mean() + half:+.2f}$]"


ORIGINAL = pd.DataFrame({"method": ["a", "b"], "acc_pct": [91.5, 80.25]})


def test_a_chained_protocol_against_fresh_runs_read_at_the_same_epoch():
    # Faithful: one run per (loss, budget), budget 10 trained 1 epoch, budget 20 two. Corrected: one run per loss
    # evaluated after epochs 1 and 2 (no budget axis: it is compared at every budget, at the faithful epoch).
    rows = []
    for seed, (f10, f20, c1, c2) in enumerate([(0.60, 0.70, 0.50, 0.65), (0.62, 0.74, 0.55, 0.66),
                                               (0.61, 0.71, 0.52, 0.70)]):
        rows += [({"loss": "a", "protocol": "original", "budget": 10}, f"f10/{seed}", seed, 1, "acc", f10),
                 ({"loss": "a", "protocol": "original", "budget": 20}, f"f20/{seed}", seed, 2, "acc", f20),
                 ({"loss": "a", "protocol": "corrected"}, f"c/{seed}", seed, 1, "acc", c1),
                 ({"loss": "a", "protocol": "corrected"}, f"c/{seed}", seed, 2, "acc", c2)]
    table = spec([claim(faithful=ProtocolCell(where={"protocol": "original"}),
                        corrected=ProtocolCell(where={"protocol": "corrected"}, epoch="faithful"))],
                 rows=["loss", "budget"], their_rows={"loss": "method", "budget": "epochs"})
    original = pd.DataFrame({"method": ["a", "a"], "epochs": [10, 20], "acc_pct": [98.5, 99.25]})
    out = protocols.protocol_rows(frame(rows), table, original, {"loss": ["a"], "budget": [10, 20]}, "quick")
    assert [(r.labels, r.theirs) for r in out] == [(["a", "10"], "98.50"), (["a", "20"], "99.25")]
    assert out[0].faithful == pm(0.60, 0.62, 0.61) and out[0].corrected == pm(0.50, 0.55, 0.52)
    assert out[1].faithful == pm(0.70, 0.74, 0.71) and out[1].corrected == pm(0.65, 0.66, 0.70)
    assert out[0].difference == difference((0.60, 0.50), (0.62, 0.55), (0.61, 0.52)) and out[0].sign == -1
    assert out[1].difference == difference((0.70, 0.65), (0.74, 0.66), (0.71, 0.70)) and out[1].n == 3


def test_one_set_of_runs_read_at_the_best_test_epoch_the_best_validation_epoch_and_the_last():
    # Per seed: test R@1 peaks at epoch 2, validation at epoch 1; the last epoch is 3.
    test = {0: [0.50, 0.70, 0.60], 1: [0.52, 0.74, 0.62], 2: [0.49, 0.69, 0.66]}
    val = {0: [0.9, 0.5, 0.4], 1: [0.8, 0.6, 0.7], 2: [0.9, 0.3, 0.2]}
    rows = [({"loss": "a", "protocol": "rules"}, f"r/{seed}", seed, epoch + 1, metric, values[seed][epoch])
            for seed in range(3) for epoch in range(3) for metric, values in (("acc", test), ("val_acc", val))]
    # A run of another sweep (no protocol axis) must not count for either protocol.
    rows += [({"loss": "a", "dim": 32}, f"d/{seed}", seed, 3, "acc", 0.99) for seed in range(3)]
    rules = {"protocol": "rules"}
    table = spec([claim(label="last", faithful=ProtocolCell(where=rules, epoch="best:acc"),
                        corrected=ProtocolCell(where=rules, epoch="last")),
                  claim(label="validation", faithful=ProtocolCell(where=rules, epoch="best:acc"),
                        corrected=ProtocolCell(where=rules, epoch="best:val_acc"))])
    last, chosen = protocols.protocol_rows(frame(rows), table, ORIGINAL, {"loss": ["a"]}, "quick")
    assert last.theirs == chosen.theirs == "91.50"
    assert last.faithful == chosen.faithful == pm(0.70, 0.74, 0.69)
    assert last.corrected == pm(0.60, 0.62, 0.66)
    assert last.difference == difference((0.70, 0.60), (0.74, 0.62), (0.69, 0.66))
    assert chosen.corrected == pm(0.50, 0.52, 0.49)


def test_selection_by_validation_per_profile_where_and_the_spread_of_single_runs():
    rows = []
    for seed in range(2):
        for lr, (val, acc) in {0.001: (0.80, 0.70 + seed / 100), 0.01: (0.90, 0.75 + seed / 100),
                               0.1: (0.85, 0.99)}.items():
            rows += [({"head": "softmax", "lr": lr}, f"{lr}/{seed}", seed, 5, "acc", acc),
                     ({"head": "softmax", "lr": lr}, f"{lr}/{seed}", seed, 5, "val_acc", val)]
    cell = claim(faithful=ProtocolCell(where={"head": "softmax", "lr": 0.1}, where_in={"quick": {"lr": 0.001}}),
                 corrected=ProtocolCell(where={"head": "softmax"},
                                        select={"axes": ["lr"], "by": "val_acc", "per": "head"}))
    table = spec([cell], rows=["head"], their_rows={"head": "method"}, row_map={"a": "softmax"}, spread=True)
    quick, = protocols.protocol_rows(frame(rows), table, ORIGINAL, {"head": ["softmax"], "lr": [0.001, 0.01, 0.1]},
                                     "quick")
    assert quick.theirs == "91.50"  # their "a" is our softmax
    assert quick.faithful == pm(0.70, 0.71) + " (runs 70.00--71.00)"  # lr 0.001 in quick
    assert quick.corrected == pm(0.75, 0.76)  # lr 0.01: the best validation accuracy, not the best test one
    assert quick.difference == "$+5.00$ [$+5.00$, $+5.00$]" and quick.sign == 1
    full, = protocols.protocol_rows(frame(rows), table, ORIGINAL, {"head": ["softmax"], "lr": [0.001, 0.01, 0.1]},
                                    "full")
    assert full.faithful.startswith(pm(0.99, 0.99).split(" ")[0])  # lr 0.1 in any other profile


def test_a_metric_per_protocol_null_in_where_and_unpaired_seeds():
    rows = [({"split": "20-80"}, f"r/{seed}", seed, 8, metric, value)
            for seed, pair in enumerate([(0.60, 0.95), (0.62, 0.96)]) for metric, value in zip(("fixed", "adaptive"), pair)]
    rows += [({"split": "20-80", "distance": "euclidean"}, "e/0", 0, 8, "fixed", 0.1)]  # another distance: left out
    rows += [({"split": "20-80"}, "r/2", 2, 8, "fixed", 0.5)]  # a seed without the corrected metric: not paired
    table = spec([claim(metric="adaptive", faithful=ProtocolCell(where={"distance": ["cosine", None]}, metric="fixed"),
                        corrected=ProtocolCell(where={"distance": ["cosine", None]}))],
                 rows=["split"], their_rows={"split": "split"})
    original = pd.DataFrame({"split": ["20-80"], "acc_pct": [None]})
    out, = protocols.protocol_rows(frame(rows), table, original, {"split": ["20-80"]}, "quick")
    assert out.theirs == "--" and out.faithful == pm(0.60, 0.62, 0.50) and out.n == 2
    assert out.difference == difference((0.60, 0.95), (0.62, 0.96))


def test_no_faithful_run_gives_no_rows_and_a_missing_csv_column_is_one_clear_error():
    rows = [({"loss": "a", "protocol": "corrected"}, "c/0", 0, 1, "acc", 0.5)]
    faithful = ProtocolCell(where={"protocol": "original"})
    table = spec([claim(faithful=faithful, corrected=ProtocolCell(where={"protocol": "corrected"}))])
    assert protocols.protocol_rows(frame(rows), table, ORIGINAL, {"loss": ["a"]}, "quick") == []
    rows.append(({"loss": "a", "protocol": "original"}, "f/0", 0, 1, "acc", 0.4))
    with pytest.raises(HarnessError, match="no column 'nope'"):
        protocols.protocol_rows(frame(rows), spec([claim(theirs="nope", faithful=faithful,
                                                         corrected=ProtocolCell())]), ORIGINAL, {}, "quick")


def test_the_faithful_epoch_rule_is_for_the_corrected_cell_only(experiments, monkeypatch):
    import yaml

    from harness import spec as spec_module
    doc = yaml.safe_load((experiments / "loss_epochs.yaml").read_text())
    doc["report"]["protocols"]["claims"][0]["faithful"]["epoch"] = "faithful"
    (experiments / "loss_epochs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError, match="'faithful' is for the corrected cell only"):
        spec_module.load("loss_epochs", "quick", experiments, components=False)


def test_records_take_their_axis_labels_from_the_study_file_as_it_stands(tmp_path):
    # A corrected loss_epochs run recorded before the `protocol` axis existed: its run_id (its config) is the same,
    # and the chapter labels it as the study file does now.
    from harness import spec as spec_module, store
    from harness.render import chapter

    study = spec_module.load("loss_epochs", "quick", components=False)
    run = next(r for r in study.runs if r.axes.get("protocol") == "corrected")
    recorded = next(p for p in (REPO / "results" / "loss_epochs" / "quick").glob("*.json")
                    if store.read(p).run_id == run.run_id)
    record = store.read(recorded).model_copy(update={"axes": {"loss": run.axes["loss"]}})
    store.write(tmp_path, record)
    got, = chapter.study_records(study, tmp_path)
    assert got.axes == run.axes and got.axes["protocol"] == "corrected" and got.metrics == record.metrics
