"""`harness evaluate FILE.npz`: users score their own embeddings; JSON on stdout, one error line on bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness import evaluate


@pytest.fixture
def embeddings_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 300)
    query = (np.eye(5, 16)[labels] * 3 + rng.standard_normal((300, 16))).astype(np.float32)
    path = tmp_path / "emb.npz"
    np.savez(path, query=query, query_labels=labels)
    return path


def test_prints_the_same_numbers_as_the_library(embeddings_file: Path, run_cli):
    code, out, err = run_cli("evaluate", embeddings_file, "--k", "1", "5", "--distance", "cosine")
    assert code == 0, err
    values = json.loads(out)
    with np.load(embeddings_file) as arrays:
        expected = evaluate.evaluate(arrays["query"], arrays["query_labels"], distance="cosine", recall_ks=(1, 5),
                                     metrics=["precision_at_1", "recall_at_k", "map_at_r", "r_precision",
                                              "knn_accuracy"])
    assert values == expected
    assert set(values) == {"precision_at_1", "recall_at_1", "recall_at_5", "map_at_r", "r_precision", "knn_accuracy"}


def test_separate_reference_and_other_metric_families(tmp_path: Path, run_cli):
    rng = np.random.default_rng(1)
    ref_y, query_y = rng.integers(0, 4, 200), rng.integers(0, 4, 50)
    centres = rng.standard_normal((4, 8)) * 4
    path = tmp_path / "pair.npz"
    np.savez(path, query=centres[query_y] + rng.standard_normal((50, 8)), query_labels=query_y,
             reference=centres[ref_y] + rng.standard_normal((200, 8)), reference_labels=ref_y)
    code, out, err = run_cli("evaluate", path, "--metrics", "map_at_r", "nmi", "ami", "triplet_accuracy",
                             "episode_accuracy", "verification", "--n-way", "3", "--episodes", "50")
    assert code == 0, err
    values = json.loads(out)
    for key in ("map_at_r", "nmi", "ami", "triplet_accuracy", "episode_accuracy", "episode_ci95",
                "verification_accuracy", "verification_threshold", "roc_auc"):
        assert key in values and np.isfinite(values[key])


@pytest.mark.parametrize("arrays,match", [
    ({"queries": np.zeros((3, 2))}, "missing array\\(s\\) query, query_labels"),
    ({"query": np.full((3, 2), np.nan), "query_labels": np.array([0, 1, 1])}, "NaN or infinite"),
    ({"query": np.zeros((3, 2)), "query_labels": np.array([0, 1])}, "labels of shape"),
    ({"query": np.zeros((3, 2)), "query_labels": np.array([1, 1, 1])}, "same class"),
    ({"query": np.zeros((0, 2)), "query_labels": np.zeros(0)}, "non-empty"),
    ({"query": np.zeros((4, 2)), "query_labels": np.array([0, 0, 1, 1]), "reference": np.zeros((4, 2))},
     "both reference"),
])
def test_bad_files_are_one_line_and_exit_2(tmp_path: Path, run_cli, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    code, out, err = run_cli("evaluate", path)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert __import__("re").search(match, err), err


def test_missing_and_corrupt_files(tmp_path: Path, run_cli):
    code, _, err = run_cli("evaluate", tmp_path / "none.npz")
    assert code == 2 and "no such file" in err
    (tmp_path / "junk.npz").write_text("not an archive")
    code, _, err = run_cli("evaluate", tmp_path / "junk.npz")
    assert code == 2 and "not a .npz archive" in err and err.count("\n") == 1
