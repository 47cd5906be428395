"""models: the ResNet-50 DML embedder: shapes, local ImageNet weights (found, missing, corrupt), frozen BatchNorm,
the backbone/head parameter split, channels_last, config errors. All on CPU at 64x64 with fake weight files."""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from pathlib import Path

import pytest
import torch
import torchvision

from harness import models
from harness.errors import ConfigError, DataError

SHAPE = (3, 64, 64)
SMALL = (3, 32, 32)  # forward passes that only check statistics or layouts: 1x1 after layer4, a quarter of the cost
BASE = {"name": "resnet50", "pretrained": False}


def cache_name(weights: str) -> str:
    return os.path.basename(urllib.parse.urlparse(torchvision.models.ResNet50_Weights[weights].url).path)


def batchnorms(net: torch.nn.Module) -> list[torch.nn.BatchNorm2d]:
    return [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """ResNet-50 forwards on a shared, busy CPU: several OpenMP threads spin against each other (a 2x3x32x32 pass
    took 3 s with two threads, 0.03 s with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fake_weights(tmp_path_factory) -> Path:
    """A seeded torchvision ResNet-50 state dict, fc included as in the real file (written once: it is 100 MB)."""
    torch.manual_seed(1234)
    path = tmp_path_factory.mktemp("weights") / "fake_resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    return path


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty $TORCH_HOME; monkeypatch restores the old value."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert Path(torch.hub.get_dir()) == tmp_path / "torch" / "hub"  # nothing called torch.hub.set_dir
    return tmp_path / "torch"


def put_in_cache(torch_home: Path, source: Path, weights: str = "IMAGENET1K_V1") -> Path:
    target = torch_home / "hub" / "checkpoints" / cache_name(weights)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(source, target)
    return target


def test_cache_names_are_torchvisions():
    assert cache_name("IMAGENET1K_V1") == "resnet50-0676ba61.pth"
    assert cache_name("IMAGENET1K_V2") == "resnet50-11ad3fa6.pth"


def test_shape_and_no_files_needed_without_pretrained(torch_home):
    net = models.build_model(BASE, SHAPE).eval()
    with torch.no_grad():
        assert net(torch.randn(2, *SHAPE)).shape == (2, 512)
    assert net.weights_source is None and net.weights_sha256 is None
    assert models.embedding_dim({"name": "resnet50"}) == 512
    assert models.embedding_dim({"name": "resnet50", "embedding_dim": 128}) == 128


def test_normalize_gives_unit_vectors():
    net = models.build_model({**BASE, "embedding_dim": 64, "normalize": True}, SMALL).eval()
    with torch.no_grad():
        out = net(torch.randn(2, *SMALL))
    assert out.shape == (2, 64) and torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


@pytest.mark.parametrize("weights", ["IMAGENET1K_V1", "IMAGENET1K_V2"])
def test_weights_load_from_the_torch_hub_cache(torch_home, fake_weights, weights):
    target = put_in_cache(torch_home, fake_weights, weights)
    net = models.build_model({"name": "resnet50", "weights": weights}, SHAPE)
    state = torch.load(fake_weights, weights_only=True)
    assert torch.equal(net.backbone.conv1.weight, state["conv1.weight"])
    assert torch.equal(net.backbone.layer4[2].bn3.running_var, state["layer4.2.bn3.running_var"])
    assert isinstance(net.backbone.fc, torch.nn.Identity)  # the file's ImageNet classifier is not used
    assert net.weights_source == str(target)
    assert net.weights_sha256 == hashlib.sha256(fake_weights.read_bytes()).hexdigest()


def test_explicit_weights_path(torch_home, fake_weights):
    net = models.build_model({"name": "resnet50", "weights_path": str(fake_weights)}, SHAPE)
    assert torch.equal(net.backbone.conv1.weight, torch.load(fake_weights, weights_only=True)["conv1.weight"])
    assert net.weights_source == str(fake_weights)


def test_missing_weights_name_the_file_the_folder_and_how_to_get_them(torch_home):
    with pytest.raises(DataError) as caught:
        models.build_model({"name": "resnet50"}, SHAPE)
    message = str(caught.value)
    assert "\n" not in message
    assert "resnet50-0676ba61.pth" in message
    assert str(torch_home / "hub" / "checkpoints") in message
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in message
    assert "weights='IMAGENET1K_V1'" in message


def test_missing_explicit_weights_path(tmp_path):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(DataError, match=f"weights_path {missing} not found") as caught:
        models.build_model({"name": "resnet50", "weights_path": str(missing)}, SHAPE)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated zip"])
def test_corrupt_weights_file(torch_home, tmp_path, content):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(content)
    put_in_cache(torch_home, junk)
    with pytest.raises(DataError, match="cannot read weights file .*resnet50-0676ba61.pth") as caught:
        models.build_model({"name": "resnet50"}, SHAPE)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("state, message", [
    ({"conv1.weight": torch.zeros(64, 3, 7, 7)}, "not a torchvision ResNet-50 state dict .*missing"),
    ([1, 2, 3], "holds a list, not a state dict"),
])
def test_a_readable_file_that_is_not_resnet50_weights(tmp_path, state, message):
    path = tmp_path / "other.pth"
    torch.save(state, path)
    with pytest.raises(DataError, match=message):
        models.build_model({"name": "resnet50", "weights_path": str(path)}, SHAPE)


def test_freeze_bn_keeps_running_statistics_and_affine_parameters_fixed():
    net = models.build_model({**BASE, "freeze_bn": True}, SMALL).train()
    assert net.training and net.head.training
    bns = batchnorms(net)
    assert len(bns) == 53 and all(not bn.training for bn in bns)
    assert all(not p.requires_grad for bn in bns for p in bn.parameters())
    assert net.backbone.conv1.weight.requires_grad and net.head.weight.requires_grad
    before = [bn.running_mean.clone() for bn in bns]
    net(torch.randn(2, *SMALL)).sum().backward()
    assert all(torch.equal(bn.running_mean, old) for bn, old in zip(bns, before, strict=True))
    assert net.backbone.conv1.weight.grad is not None and all(bn.weight.grad is None for bn in bns)
    net.eval().train()
    assert all(not bn.training for bn in bns)


def test_without_freeze_bn_running_statistics_move():
    net = models.build_model(BASE, SMALL).train()
    bns = batchnorms(net)
    assert all(bn.training for bn in bns) and all(p.requires_grad for p in net.parameters())
    before = [bn.running_mean.clone() for bn in bns]
    with torch.no_grad():
        net(torch.randn(2, *SMALL))
    assert not any(torch.equal(bn.running_mean, old) for bn, old in zip(bns, before, strict=True))


def test_backbone_and_head_parameters_cover_every_parameter_once():
    net = models.build_model({**BASE, "freeze_bn": True}, SHAPE)
    backbone, head = list(net.backbone_parameters()), list(net.head_parameters())
    ids = [id(p) for p in backbone + head]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in net.parameters()}
    assert {id(p) for p in head} == {id(net.head.weight), id(net.head.bias)}
    assert sum(p.numel() for p in head) == 2048 * 512 + 512


def test_channels_last_matches_contiguous():
    torch.manual_seed(0)
    net = models.build_model({**BASE, "normalize": True}, SMALL).eval()
    x = torch.randn(2, *SMALL)
    with torch.no_grad():
        plain = net(x)
        fast = net.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    assert net.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(plain, fast, atol=1e-5, rtol=0)


def test_unknown_argument_is_refused_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown argument 'freeze_batchnorm'.*did you mean 'freeze_bn'"):
        models.MODELS.check({"name": "resnet50", "freeze_batchnorm": True}, "model")
    with pytest.raises(ConfigError, match=r"unknown argument 'embed_dim'.*did you mean 'embedding_dim'"):
        models.check_model({"name": "resnet50", "embed_dim": 128}, "model")


@pytest.mark.parametrize("args, message", [
    ({"embedding_dim": 0}, r"model\.embedding_dim: expected a positive integer, got 0"),
    ({"weights": "IMAGENET1K_V3"}, r"model\.weights: unknown ResNet50_Weights member 'IMAGENET1K_V3' "
                                   r"\(did you mean 'IMAGENET1K_V[12]'\?\); "
                                   r"known: IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT"),
    ({"pretrained": False, "weights_path": "w.pth"}, r"model\.weights_path: given .* but pretrained is false"),
    ({"freeze_bn": "yes"}, r"model\.freeze_bn: expected bool"),
])
def test_bad_values_fail_before_any_compute(args, message):
    with pytest.raises(ConfigError, match=message):
        models.check_model({"name": "resnet50", **args}, "model")


@pytest.mark.parametrize("shape", [(1, 64, 64), (4, 64, 64)])
def test_non_rgb_input_is_refused(shape):
    with pytest.raises(ConfigError, match=r"model 'resnet50' needs 3-channel \(RGB\) inputs; got input shape") as c:
        models.build_model(BASE, shape)
    assert "\n" not in str(c.value)
