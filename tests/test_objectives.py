"""objectives and models: configs build the pytorch-metric-learning objects the original used, with its parameters."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from pytorch_metric_learning import distances, losses, miners, reducers

from harness import models, objectives, schema, spec


def built(loss_label: str):
    run = next(r for r in spec.load("loss_epochs", "full").runs if r.axes.get("protocol") != "original" and r.axes.get("loss") == loss_label)
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


# --- classifier heads: ArcFace (m in radians, s) and plain softmax cross-entropy ---

def test_arcface_equals_pml_arcface_with_the_margin_in_degrees():
    import math

    torch.manual_seed(0)
    ours = objectives.ArcFace(num_classes=5, embedding_size=8, m=0.4, s=2)
    theirs = losses.ArcFaceLoss(num_classes=5, embedding_size=8, margin=math.degrees(0.4), scale=2)
    theirs.W.data.copy_(ours.W.data)
    x, y = torch.randn(16, 8), torch.randint(0, 5, (16,))
    assert ours.margin == pytest.approx(0.4, abs=1e-12) and ours.scale == 2
    torch.testing.assert_close(ours(x, y), theirs(x, y))
    # A margin of 0.4 degrees (the unit PML expects) would be a different loss: the conversion matters.
    wrong = losses.ArcFaceLoss(num_classes=5, embedding_size=8, margin=0.4, scale=2)
    wrong.W.data.copy_(ours.W.data)
    assert not torch.allclose(ours(x, y), wrong(x, y))


def test_arcface_logits_predict_the_nearest_class_weight_in_angle():
    torch.manual_seed(1)
    head = objectives.ArcFace(num_classes=7, embedding_size=6, m=0.4, s=2)
    x = torch.randn(50, 6) * 3
    cosine = F.normalize(x, dim=1) @ F.normalize(head.W.detach(), dim=0)
    logits = head.get_logits(x).detach()
    assert logits.shape == (50, 7)
    torch.testing.assert_close(logits, 2 * cosine)  # s * cos(theta_j), no margin
    assert torch.equal(logits.argmax(dim=1), cosine.argmax(dim=1))


@pytest.mark.parametrize("target_angle", [0.3, 3.0])  # 3.0 > pi - m: PML's monotonic continuation
def test_arcface_loss_by_hand(target_angle):
    import math

    m, s, other_angle = 0.4, 2.0, 1.2
    head = objectives.ArcFace(num_classes=2, embedding_size=2, m=m, s=s)
    # Class weights at known angles from the embedding (1, 0); their norms must not matter.
    w = torch.tensor([[math.cos(target_angle), math.cos(other_angle)],
                      [math.sin(target_angle), math.sin(other_angle)]]) * torch.tensor([3.0, 0.5])
    head.W.data.copy_(w)
    x, y = torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    if target_angle <= math.pi - m:
        target = s * math.cos(target_angle + m)
    else:
        target = s * (math.cos(target_angle) - m * math.sin(m))
    other = s * math.cos(other_angle)
    expected = -target + math.log(math.exp(target) + math.exp(other))  # cross-entropy by hand
    assert head(x, y).item() == pytest.approx(expected, abs=1e-5)


def test_arcface_refuses_pml_margin_and_scale_arguments():
    from harness.errors import ConfigError

    objectives.LOSSES.check({"name": "arcface", "m": 0.4, "s": 64}, "loss")  # its own arguments pass
    for key in ("margin", "scale"):
        with pytest.raises(ConfigError) as info:
            objectives.LOSSES.check({"name": "arcface", key: 28.6}, "loss")
        message = str(info.value)
        assert f"unknown argument '{key}' for loss 'arcface'" in message
        assert "allowed: embedding_size, m, num_classes, s" in message
    # Built from a config, ArcFace gets num_classes and embedding_size from the context.
    built = objectives.build_loss({"name": "arcface", "m": 0.1, "s": 64}, num_classes=10, embedding_size=128)
    assert isinstance(built, objectives.ArcFace) and built.W.shape == (128, 10)
    assert built.margin == pytest.approx(0.1) and built.scale == 64


def test_softmax_cross_entropy_equals_torch():
    torch.manual_seed(2)
    head = objectives.build_loss({"name": "softmax_ce"}, num_classes=4, embedding_size=6)
    x, y = torch.randn(20, 6), torch.randint(0, 4, (20,))
    torch.testing.assert_close(head(x, y), F.cross_entropy(head.fc(x), y))
    torch.testing.assert_close(head.get_logits(x), x @ head.fc.weight.T + head.fc.bias)
    no_bias = objectives.build_loss({"name": "softmax_ce", "bias": False}, num_classes=4, embedding_size=6)
    assert no_bias.fc.bias is None


def test_has_classifier():
    assert objectives.has_classifier({"name": "arcface", "m": 0.4})
    assert objectives.has_classifier({"name": "softmax_ce"})
    assert objectives.has_classifier({"name": "normalized_softmax"})
    assert not objectives.has_classifier({"name": "contrastive"})
    assert not objectives.has_classifier({"name": "triplet_margin"})


def test_classification_accuracy_needs_a_classifier_head():
    from harness.errors import ConfigError

    base = next(r for r in spec.load("loss_epochs", "smoke").runs).config.model_dump(mode="json")
    config = {**base, "loss": {"name": "contrastive"}, "miner": None,
              "eval": {**base["eval"], "metrics": ["knn_accuracy", "classification_accuracy"]}}
    with pytest.raises(ConfigError, match="classification_accuracy needs a loss with a classifier head.*"
                                          "loss 'contrastive' has none"):
        schema.check_components(schema.RunConfig.model_validate(config))
    unseen = {**config, "eval": {**base["eval"], "unseen_metrics": ["classification_accuracy"]}}
    with pytest.raises(ConfigError, match="classifier head"):
        schema.check_components(schema.RunConfig.model_validate(unseen))
    for head in ({"name": "softmax_ce"}, {"name": "arcface", "m": 0.4, "s": 2}):
        assert schema.RunConfig.model_validate({**config, "loss": head}).loss == head


def test_distance_heads_score_the_nearest_class_highest():
    """ProxyAnchor with an Lp distance returns distances from get_logits: class_scores negates them."""
    from harness.evaluate import classification_accuracy
    from harness.objectives import build_loss, class_scores

    head = build_loss({"name": "proxy_anchor", "distance": {"name": "lp"}}, num_classes=3, embedding_size=2)
    with torch.no_grad():
        head.proxies.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    x = head.proxies.detach().clone()
    assert classification_accuracy(class_scores(head, x), torch.arange(3)) == 1.0
    cosine = build_loss({"name": "arcface", "m": 0.2, "s": 4.0}, num_classes=3, embedding_size=2)
    assert torch.equal(class_scores(cosine, x), cosine.get_logits(x))
