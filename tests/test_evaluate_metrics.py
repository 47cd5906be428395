"""evaluate.metrics: each metric function the catalog names writes exactly the results the catalog says it does
(tables and figures refer to those names), from one shared ranking."""

from __future__ import annotations

import pytest

from harness import catalog
from harness.evaluate import metrics
from tests.conftest import clustered

# Results written only when an option asks for them.
OPTIONAL = {"verification_fixed_accuracy"}


@pytest.mark.parametrize("name", sorted(catalog.METRICS))
def test_each_metric_writes_what_the_catalog_declares(name):
    x, y = clustered(120, 6, 8, seed=1)
    inputs = metrics.Inputs(x, y, None, None, options={"n_way": 3, "n_episodes": 20, "n_pairs": 200,
                                                       "n_triplets": 200})
    got = catalog.METRICS.get(name)(inputs)
    declared = set(catalog.METRIC_OUTPUTS.get(name, (name,)))
    if name in ("nmi", "ami"):  # one k-means gives both (evaluate keeps what was asked)
        declared = {"nmi", "ami"}
    assert declared - OPTIONAL <= set(got) <= declared, (name, sorted(got))
    assert all(isinstance(v, (int, float)) for v in got.values())  # episodes is a count


def test_the_ranking_is_computed_once_per_call():
    x, y = clustered(60, 3, 4, seed=2)
    inputs = metrics.Inputs(x, y, None, None)
    metrics.precision_at_1(inputs)
    ranking = inputs.ranking
    metrics.map_at_r(inputs)
    assert inputs.ranking is ranking
