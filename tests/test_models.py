"""models: shapes, parameter counts against hand formulas, config errors, seeded init, BatchNorm inside a run."""

from __future__ import annotations


import pytest
import torch

from tests.conftest import with_config
from harness import data, models, spec, train
from harness.errors import ConfigError


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def resnet_params(blocks: list[int], channels: int) -> int:
    """Hand count for the CIFAR ResNet with option-A shortcuts: bias-free 3x3 convs, BatchNorm weight + bias."""
    total = 9 * channels * 16 + 2 * 16  # stem conv + BN
    in_width = 16
    for count, width in zip(blocks, (16, 32, 64), strict=True):
        total += 9 * in_width * width + 9 * width * width + 4 * width  # first block (may change width)
        total += (count - 1) * (18 * width * width + 4 * width)
        in_width = width
    return total


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("spec_, dim", [({"name": "seminar_convnet"}, 50),
                                        ({"name": "seminar_convnet", "embedding_dim": 32}, 32),
                                        ({"name": "cifar_resnet", "blocks": [1, 1, 1]}, 64),
                                        ({"name": "cifar_resnet", "blocks": [1, 1, 1], "embedding_dim": 128}, 128)])
def test_output_shapes(spec_, dim, shape):
    net = models.build_model(spec_, shape)
    assert net(torch.randn(3, *shape)).shape == (3, dim)
    assert models.embedding_dim(spec_) == dim


def test_seminar_convnet_matches_the_notebook_net():
    net = models.build_model({"name": "seminar_convnet"}, (1, 28, 28))
    assert net.fc.in_features == 320  # the original's fc(320 -> 50)
    assert n_params(net) == (10 * 25 + 10) + (20 * 250 + 20) + (320 * 50 + 50)
    assert models.build_model({"name": "seminar_convnet"}, (3, 32, 32)).fc.in_features == 500


def test_seminar_convnet_embedding_is_not_normalised():
    net = models.build_model({"name": "seminar_convnet"}, (1, 28, 28)).eval()
    out = net(torch.rand(8, 1, 28, 28))
    assert (out >= 0).all()  # ReLU is the last non-identity layer: the heads normalise when they need to
    assert not torch.allclose(out.norm(dim=1), torch.ones(8))


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 15, 28), (3, 28, 12)])
def test_seminar_convnet_refuses_a_too_small_input(shape):
    with pytest.raises(ConfigError, match=r"seminar_convnet.*16x16.*" + r"\(" + ", ".join(map(str, shape)) + r"\)"):
        models.build_model({"name": "seminar_convnet"}, shape)


def test_seminar_convnet_smallest_input_runs():
    assert models.build_model({"name": "seminar_convnet"}, (1, 16, 16))(torch.randn(2, 1, 16, 16)).shape == (2, 50)


def test_resnet56_has_the_papers_parameter_count():
    net = models.build_model({"name": "cifar_resnet"}, (3, 32, 32))
    count = n_params(net)
    assert count == resnet_params([9, 9, 9], 3) == 852_368  # akamaster's 853,018 less its 64->10 classifier
    assert abs(count - 0.85e6) <= 0.01e6  # He et al. 2016, Table 6: 0.85M
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 64)


@pytest.mark.parametrize("blocks, channels", [([1, 1, 1], 1), ([2, 2, 2], 3), ([3, 1, 2], 1)])
def test_resnet_parameter_count_matches_the_hand_formula(blocks, channels):
    net = models.build_model({"name": "cifar_resnet", "blocks": blocks}, (channels, 32, 32))
    assert n_params(net) == resnet_params(blocks, channels)
    assert len([m for m in net.modules() if isinstance(m, models.BasicBlock)]) == sum(blocks)


def test_option_a_shortcut_has_no_parameters_and_zero_pads():
    net = models.build_model({"name": "cifar_resnet", "blocks": [1, 1, 1]}, (1, 8, 8))
    shortcuts = [m for m in net.modules() if isinstance(m, models.ZeroPadShortcut)]
    assert len(shortcuts) == 2  # entering the 32- and 64-wide stages
    assert all(n_params(s) == 0 and not list(s.buffers()) for s in shortcuts)
    x = torch.randn(2, 16, 7, 7)
    out = models.ZeroPadShortcut(16, 32, 2)(x)
    assert out.shape == (2, 32, 4, 4)  # ceil(7 / 2), as the stride-2 convolution beside it
    torch.testing.assert_close(out[:, 8:24], x[:, :, ::2, ::2])
    assert not out[:, :8].any() and not out[:, 24:].any()


def test_resnet8_runs_on_8x8_digits_and_normalises_on_request():
    net = models.build_model({"name": "cifar_resnet", "blocks": [1, 1, 1], "normalize": True}, (1, 8, 8))
    out = net(torch.randn(1, 1, 8, 8))  # a batch of one still trains: BatchNorm sees 2x2 values per channel
    assert out.shape == (1, 64)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(1))


def test_resnet_eval_mode_uses_running_statistics():
    net = models.build_model({"name": "cifar_resnet", "blocks": [1, 1, 1]}, (1, 8, 8))
    x = torch.randn(6, 1, 8, 8)
    net(x)  # one training-mode pass moves the running statistics
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x)[:2], net(x[:2]))  # an embedding does not depend on its batch


@pytest.mark.parametrize("spec_", [{"name": "seminar_convnet"}, {"name": "cifar_resnet", "blocks": [1, 1, 1]}])
def test_same_seed_same_init(spec_):
    def init(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return models.build_model(spec_, (1, 28, 28)).state_dict()

    first, again, other = init(0), init(0), init(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_embedding_dim_without_building():
    assert models.embedding_dim({"name": "cifar_resnet"}) == 64
    assert models.embedding_dim({"name": "cifar_resnet", "embedding_dim": None}) == 64
    assert models.embedding_dim({"name": "cifar_resnet", "embedding_dim": 16}) == 16
    assert models.embedding_dim({"name": "seminar_convnet"}) == 50
    assert models.embedding_dim({"name": "thesis_convnet"}) == 128


def test_unknown_argument_is_refused_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"model: unknown argument 'block' for model 'cifar_resnet' "
                                          r"\(did you mean 'blocks'\?\); allowed: blocks, embedding_dim, normalize"):
        models.check_model({"name": "cifar_resnet", "block": [1, 1, 1]}, "model")
    with pytest.raises(ConfigError, match=r"unknown argument 'drop_out'.*did you mean 'dropout'"):
        models.MODELS.check({"name": "seminar_convnet", "drop_out": 0.5}, "model")
    with pytest.raises(ConfigError, match=r"unknown model 'cifar_resnt'.*did you mean 'cifar_resnet'"):
        models.check_model({"name": "cifar_resnt"}, "model")


@pytest.mark.parametrize("args, message", [
    ({"blocks": [9, 9]}, r"model\.blocks: expected 3 positive integers.*got \[9, 9\]"),
    ({"blocks": [9, 0, 9]}, r"model\.blocks: expected 3 positive integers"),
    ({"blocks": "9,9,9"}, r"model\.blocks: expected 3 positive integers"),
    ({"embedding_dim": 0}, r"model\.embedding_dim: expected a positive integer or null, got 0"),
    ({"normalize": 1}, r"model\.normalize: expected bool"),
])
def test_bad_resnet_values_fail_before_any_compute(args, message):
    with pytest.raises(ConfigError, match=message):
        models.check_model({"name": "cifar_resnet", **args}, "model")


@pytest.mark.slow
def test_a_batchnorm_model_trains_and_evaluates_in_the_harness():
    """Embedding passes run in eval mode (running statistics, no batch dependence) and training resumes after."""
    run = next(r for r in spec.load("loss_epochs", "smoke").runs if r.axes.get("protocol") != "original" and r.axes.get("loss") == "triplet")
    model = {"name": "cifar_resnet", "blocks": [1, 1, 1]}
    run = with_config(run, run.config.model_copy(update={"model": model}))
    trainer = train.Trainer(run, train.Accelerator(cpu=True), data.load("digits"))
    trainer.train_epoch(1, [])
    bn = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert int(bn.num_batches_tracked) == trainer.steps_per_epoch
    first = trainer.embed(trainer.parts.test)
    assert trainer.model.training and first.shape == (len(trainer.parts.test.labels), 64)
    assert (trainer.embed(trainer.parts.test) == first).all()
    assert int(bn.num_batches_tracked) == trainer.steps_per_epoch  # evaluating did not touch the statistics

    record = train.execute(run, progress=False)
    assert record.status == "ok", record.error
