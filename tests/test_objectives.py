"""objectives and models: configs build the pytorch-metric-learning objects the original used, with its parameters."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning import distances, losses, miners, reducers

from harness import models, objectives, spec


def built(loss_label: str):
    run = next(r for r in spec.load("loss_epochs", "full").runs if r.axes["loss"] == loss_label)
    return (objectives.build_loss(run.config.loss, num_classes=10, embedding_size=128),
            objectives.build_miner(run.config.miner))


def reducer_types(loss) -> set[type]:
    """PML wraps some losses' reducer once per term (positive and negative); the configured class is inside."""
    reducer = loss.reducer
    inner = getattr(reducer, "reducers", None)
    return {type(r) for r in inner.values()} if inner is not None else {type(reducer)}


def test_original_loss_parameters():
    loss, miner = built("contrastive")
    assert isinstance(loss, losses.ContrastiveLoss) and (loss.pos_margin, loss.neg_margin) == (0, 1)
    assert isinstance(loss.distance, distances.LpDistance) and loss.distance.normalize_embeddings
    assert loss.distance.p == 2 and loss.distance.power == 1
    assert reducer_types(loss) == {reducers.AvgNonZeroReducer}
    assert isinstance(miner, miners.TripletMarginMiner) and miner.margin == 0.2
    assert miner.type_of_triplets == "semihard" and isinstance(miner.distance, distances.DotProductSimilarity)

    loss, miner = built("proxy_anchor")
    assert isinstance(loss, losses.ProxyAnchorLoss) and miner is None
    assert loss.proxies.shape == (10, 128) and (loss.margin, loss.alpha) == (0.1, 32)
    assert isinstance(loss.distance, distances.CosineSimilarity) and reducer_types(loss) == {reducers.DivisorReducer}

    loss, miner = built("margin")
    assert isinstance(loss, losses.MarginLoss) and loss.margin == 0.2 and loss.nu == 0
    assert float(loss.beta) == pytest.approx(1.2) and not loss.learn_beta and miner is not None
    assert reducer_types(loss) == {reducers.DivisorReducer}

    loss, miner = built("nca")
    assert isinstance(loss, losses.NCALoss) and loss.softmax_scale == 1 and miner is None
    assert reducer_types(loss) == {reducers.MeanReducer}

    loss, miner = built("triplet")
    assert isinstance(loss, losses.TripletMarginLoss) and loss.margin == 0.05 and miner is not None
    assert reducer_types(loss) == {reducers.AvgNonZeroReducer}


def test_thesis_convnet_shapes():
    net = models.build_model({"name": "thesis_convnet", "embedding_dim": 128}, (1, 28, 28))
    assert net.fc.in_features == 9216  # the original's fc(9216 -> 128)
    out = net(torch.randn(5, 1, 28, 28))
    assert out.shape == (5, 128)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))
    small = models.build_model({"name": "thesis_convnet"}, (1, 8, 8))
    assert small(torch.randn(2, 1, 8, 8)).shape == (2, 128)
    assert models.embedding_dim({"name": "thesis_convnet"}) == 128
