"""Embedding networks, by name: each factory takes the input shape and its config arguments, returns a fresh module."""

from __future__ import annotations

import inspect
import os
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from harness.catalog import MODELS
from harness.errors import ConfigError, DataError, suggest
from harness.files import file_hash
from harness.registry import arguments


class RawInput(nn.Module):
    """No learning: the input itself, flattened (already normalised as every model of the study sees it).

    The raw-input baseline of every table: a study's trained networks must beat this on the same split, metric and
    distance, or they learned nothing the pixels did not already hold. `normalize` L2-normalises the vectors (as
    the study's own model does, when it does). It has no parameters: runs with it train for 0 epochs.
    """

    trainable = False

    def __init__(self, input_shape: tuple[int, int, int], normalize: bool = False) -> None:
        super().__init__()
        self.normalize = normalize

    @classmethod
    def output_dim(cls, input_shape: tuple[int, ...] = (), **_: Any) -> int:
        return int(torch.tensor(input_shape).prod()) if input_shape else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        return F.normalize(x, p=2, dim=1) if self.normalize else x


class ThesisConvNet(nn.Module):
    """The seed-000 network: conv32, conv64, maxpool, dropout, one linear layer, L2-normalised output.

    The linear layer's input size is computed from the input shape (9216 for 28x28 images), so the same
    architecture also runs on 8x8 digits in the smoke profile.
    """

    def __init__(self, input_shape: tuple[int, int, int], embedding_dim: int = 128, dropout: float = 0.25,
                 normalize: bool = True) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.conv1 = nn.Conv2d(channels, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.dropout = nn.Dropout2d(dropout)
        flat = 64 * ((height - 4) // 2) * ((width - 4) // 2)
        self.fc = nn.Linear(flat, embedding_dim)
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.dropout(F.max_pool2d(x, 2))
        x = self.fc(torch.flatten(x, 1))
        return F.normalize(x, p=2, dim=1) if self.normalize else x



class SeminarConvNet(nn.Module):
    """The seed-002 network (ArcFace vs softmax on MNIST): two 5x5 convolutions and a hidden layer of 50.

    It mirrors `Net` in Sorrow321/cmc_seminar_master, old_files/mnist_arcface.ipynb: conv(C->10, 5) maxpool ReLU,
    conv(10->20, 5) dropout maxpool ReLU, fc(flat->50) ReLU dropout; those 50 values fed either the ArcFace head or
    a Linear(50, 10) softmax head. The notebook's dropout after conv2 is `nn.Dropout()` (element-wise), not the
    `Dropout2d` of the PyTorch MNIST example it descends from, so element-wise dropout is kept here.

    The embedding is returned as is, not L2-normalised: the softmax baseline's linear head saw the raw 50 values,
    and the heads that need unit vectors (ArcFace, cosine losses) normalise their input themselves. `flat` follows
    the input shape (320 for 1x28x28, 500 for 3x32x32); below 16x16 nothing is left after the second pooling.
    """

    MIN_SIDE = 16  # 16 -> conv 12 -> pool 6 -> conv 2 -> pool 1

    def __init__(self, input_shape: tuple[int, int, int], embedding_dim: int = 50, dropout: float = 0.5) -> None:
        super().__init__()
        channels, height, width = input_shape
        if min(height, width) < self.MIN_SIDE:
            raise ConfigError(f"model 'seminar_convnet' needs inputs of at least {self.MIN_SIDE}x{self.MIN_SIDE} "
                              f"(two 5x5 convolutions, two 2x2 poolings); got input shape {tuple(input_shape)}")
        self.conv1 = nn.Conv2d(channels, 10, 5)
        self.conv2 = nn.Conv2d(10, 20, 5)
        self.conv_dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(20 * self._side(height) * self._side(width), embedding_dim)
        self.fc_dropout = nn.Dropout(dropout)

    @staticmethod
    def _side(pixels: int) -> int:
        return ((pixels - 4) // 2 - 4) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv_dropout(self.conv2(x)), 2))
        return self.fc_dropout(F.relu(self.fc(torch.flatten(x, 1))))



class ZeroPadShortcut(nn.Module):
    """He et al.'s option A: identity, subsampled by the stride, with the new channels zero-padded. No parameters.

    The CIFAR ResNets of the paper (sec. 4.2) and of akamaster/pytorch_resnet_cifar10 use it, so a ResNet-56 has the
    paper's 0.85M parameters; a 1x1-convolution shortcut (option B) would add some and change the comparison.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        extra = out_channels - in_channels
        self.pad = (extra // 2, extra - extra // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same output size as the block's 3x3 stride-s convolution with padding 1: ceil(side / s).
        return F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, *self.pad))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm, added to the shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        same = stride == 1 and in_channels == out_channels
        self.shortcut = nn.Identity() if same else ZeroPadShortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """The CIFAR ResNet of He et al. 2016 (sec. 4.2), as the seed-004 project used it (ResNet-56, no final layer).

    A 3x3 stem (C->16), three stages of BasicBlocks of widths 16, 32, 64 (strides 1, 2, 2), option-A shortcuts,
    global average pooling. `blocks` = [9, 9, 9] is ResNet-56 (6n+2 layers, n = 9), [1, 1, 1] is ResNet-8.
    The embedding is the 64-d pooled output, as in the original; `embedding_dim` adds a Linear(64 -> dim).
    Any channel count and any side >= 8 works (8x8 leaves 2x2 before pooling, so BatchNorm sees several values
    per channel even in a batch of one).
    """

    WIDTHS = (16, 32, 64)
    STRIDES = (1, 2, 2)

    def __init__(self, input_shape: tuple[int, int, int], blocks: Sequence[int] = (9, 9, 9),
                 embedding_dim: int | None = None, normalize: bool = False) -> None:
        super().__init__()
        self.check_config(blocks=blocks, embedding_dim=embedding_dim)
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], self.WIDTHS[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(self.WIDTHS[0]), nn.ReLU())
        stages, in_channels = [], self.WIDTHS[0]
        for count, width, stride in zip(blocks, self.WIDTHS, self.STRIDES, strict=True):
            stage = [BasicBlock(in_channels, width, stride)]
            stage += [BasicBlock(width, width, 1) for _ in range(count - 1)]
            stages.append(nn.Sequential(*stage))
            in_channels = width
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(self.WIDTHS[-1], embedding_dim) if embedding_dim is not None else None
        self.normalize = normalize
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @classmethod
    def check_config(cls, blocks: Sequence[int] = (9, 9, 9), embedding_dim: int | None = None, **_: Any) -> None:
        """Raise ConfigError for values the signature cannot express (before any data is loaded)."""
        if (isinstance(blocks, (str, bytes)) or not isinstance(blocks, Sequence) or len(blocks) != len(cls.WIDTHS)
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in blocks)):
            raise ConfigError(f"blocks: expected {len(cls.WIDTHS)} positive integers (BasicBlocks per stage, "
                              f"e.g. [9, 9, 9] for ResNet-56), got {blocks!r}")
        if embedding_dim is not None and (isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int)
                                          or embedding_dim < 1):
            raise ConfigError(f"embedding_dim: expected a positive integer or null, got {embedding_dim!r}")

    @classmethod
    def output_dim(cls, embedding_dim: int | None = None, **_: Any) -> int:
        return cls.WIDTHS[-1] if embedding_dim is None else int(embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1)
        if self.fc is not None:
            x = self.fc(x)
        return F.normalize(x, p=2, dim=1) if self.normalize else x



def check_model(spec: Any, where: str) -> None:
    """Raise ConfigError unless `spec` names a registered model with arguments it accepts.

    Beyond the signature check, a factory may define `check_config(**args)` for constraints a signature cannot say.
    """
    MODELS.check(spec, where)
    check_config = getattr(MODELS.get(spec["name"]), "check_config", None)
    if check_config is not None:
        try:
            check_config(**arguments(spec))
        except ConfigError as error:
            raise ConfigError(f"{where}.{error}") from None


def build_model(spec: Mapping[str, Any], input_shape: tuple[int, int, int]) -> nn.Module:
    return MODELS.build(spec, input_shape)


def embedding_dim(spec: Mapping[str, Any], input_shape: Sequence[int] = ()) -> int:
    """The output size a model spec declares, without building the model.

    A factory whose output size is not simply its `embedding_dim` argument defines `output_dim(**args)` (which may
    take `input_shape`); otherwise it is that argument, or that argument's default.
    """
    factory = MODELS.get(spec["name"])
    args = arguments(spec)
    output_dim = getattr(factory, "output_dim", None)
    if output_dim is not None:
        return int(output_dim(**args, input_shape=tuple(input_shape)))
    if "embedding_dim" in args:
        return int(args["embedding_dim"])
    return int(inspect.signature(factory).parameters["embedding_dim"].default)


class ResNet50Embedder(nn.Module):
    """torchvision's ResNet-50 with its classifier replaced by Linear(2048 -> embedding_dim): the usual DML network
    for CUB-200-2011 and Cars196.

    ImageNet weights come from a local file only (the harness never downloads them): `weights_path`, or else
    torchvision's own cache file for `weights` (e.g. resnet50-0676ba61.pth for IMAGENET1K_V1) under
    torch.hub.get_dir()/checkpoints, which follows $TORCH_HOME. Backbone keys load strictly; the file's fc.* (the
    ImageNet classifier) is ignored. Which weights were loaded is kept on the module for the run record:
    `weights_source` (the file's path) and `weights_sha256` (of its bytes); both are None when `pretrained` is false.

    `freeze_bn` keeps every backbone BatchNorm in eval mode (running statistics frozen, also after `.train()`) and
    its affine parameters out of training: batch statistics of the small batches DML samples are too noisy.

    Head-only warm-up epochs are the trainer's job, not the model's: it optimises `head_parameters()` first, then
    adds `backbone_parameters()`; the two together cover `parameters()` exactly once.
    """

    FEATURES = 2048  # ResNet-50's pooled feature size
    CHANNELS = 3  # the ImageNet stem takes RGB

    def __init__(self, input_shape: tuple[int, int, int], embedding_dim: int = 512, normalize: bool = False,
                 pretrained: bool = True, weights: str = "IMAGENET1K_V1", weights_path: str | None = None,
                 freeze_bn: bool = False) -> None:
        super().__init__()
        import torchvision.models

        self.check_config(embedding_dim=embedding_dim, pretrained=pretrained, weights=weights,
                          weights_path=weights_path)
        if len(input_shape) != 3 or input_shape[0] != self.CHANNELS:
            raise ConfigError(f"model 'resnet50' needs {self.CHANNELS}-channel (RGB) inputs; got input shape "
                              f"{tuple(input_shape)}")
        self.backbone = torchvision.models.resnet50(weights=None)
        self.weights_source: str | None = None
        self.weights_sha256: str | None = None
        if pretrained:
            path = resnet50_weights_file(weights, weights_path)
            _load_backbone(self.backbone, path)
            self.weights_source, self.weights_sha256 = str(path), file_hash(path)
        self.backbone.fc = nn.Identity()  # the pooled, flattened 2048-d features
        self.head = nn.Linear(self.FEATURES, embedding_dim)
        self.normalize = normalize
        self.freeze_bn = freeze_bn
        if freeze_bn:
            for bn in self._backbone_batchnorms():
                for param in bn.parameters():
                    param.requires_grad_(False)
            self.train(self.training)

    @classmethod
    def check_config(cls, embedding_dim: int = 512, pretrained: bool = True, weights: str = "IMAGENET1K_V1",
                     weights_path: str | None = None, **_: Any) -> None:
        """Raise ConfigError for values the signature cannot express (before any data or weights are read)."""
        import torchvision.models

        if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or embedding_dim < 1:
            raise ConfigError(f"embedding_dim: expected a positive integer, got {embedding_dim!r}")
        known = list(torchvision.models.ResNet50_Weights.__members__)
        if not isinstance(weights, str) or weights not in known:
            raise ConfigError(f"weights: unknown ResNet50_Weights member {weights!r}"
                              f"{suggest(str(weights), known)}; known: {', '.join(known)}")
        if weights_path is not None and not isinstance(weights_path, str):
            raise ConfigError(f"weights_path: expected a file path or null, got {weights_path!r}")
        if weights_path is not None and not pretrained:
            raise ConfigError(f"weights_path: given ({weights_path!r}) but pretrained is false; drop one of them")

    @classmethod
    def output_dim(cls, embedding_dim: int = 512, **_: Any) -> int:
        return int(embedding_dim)

    def _backbone_batchnorms(self) -> list[nn.Module]:
        return [m for m in self.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def train(self, mode: bool = True) -> ResNet50Embedder:
        super().train(mode)
        if self.freeze_bn:
            for bn in self._backbone_batchnorms():
                bn.eval()
        return self

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """The ResNet's parameters (frozen BatchNorm ones included, with requires_grad False)."""
        return self.backbone.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """The embedding layer's parameters: what a head-only warm-up trains."""
        return self.head.parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.backbone(x))
        return F.normalize(x, p=2, dim=1) if self.normalize else x


def resnet50_weights_file(weights: str, weights_path: str | None) -> Path:
    """The local file holding torchvision's `weights` for ResNet-50; DataError (one line) when it is not there."""
    import torchvision.models

    url = torchvision.models.ResNet50_Weights[weights].url
    name = os.path.basename(urllib.parse.urlparse(url).path)  # the name torch.hub caches it under
    cache_dir = Path(torch.hub.get_dir()) / "checkpoints"
    path = Path(weights_path).expanduser() if weights_path is not None else cache_dir / name
    if path.is_file():
        return path
    fetch = (f"""python -c "import torchvision; torchvision.models.resnet50(weights='{weights}')" """
             f"on a machine with internet (it saves {name} in its torch hub checkpoints folder)")
    if weights_path is not None:
        raise DataError(f"model 'resnet50': weights_path {path} not found; put the {weights} ResNet-50 weights "
                        f"there: download {url} to that path, or run {fetch} and copy the file")
    raise DataError(f"model 'resnet50': ImageNet weights file {name} ({weights}) not found in {cache_dir} "
                    f"(the folder follows $TORCH_HOME); download {url} into {cache_dir}, or run {fetch} and copy "
                    f"it there, or set weights_path")


def _load_backbone(backbone: nn.Module, path: Path) -> None:
    """Load a torchvision ResNet-50 state dict into `backbone`, strictly on all keys but the classifier's fc.*."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, pickle junk, not a tensor file: all mean "get the file again"
        raise DataError(f"model 'resnet50': cannot read weights file {path} ({type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else 'no detail'}); delete it and fetch it "
                        f"again") from None
    if not isinstance(state, Mapping):
        raise DataError(f"model 'resnet50': weights file {path} holds a {type(state).__name__}, not a state dict")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        missing, unexpected = backbone.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches are raised even when not strict
        raise DataError(f"model 'resnet50': weights file {path} does not fit torchvision's ResNet-50 "
                        f"({' '.join(str(error).split())[:300]})") from None
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise DataError(f"model 'resnet50': weights file {path} is not a torchvision ResNet-50 state dict "
                        f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                        f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''})")
