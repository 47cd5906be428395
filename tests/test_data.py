"""data: IDX loading on files written in the real on-disk format, checksums, clear errors, balanced subsets."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from harness import data
from harness.data import digits, idx
from harness.errors import ConfigError, DataError


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX format: two zero bytes, type 0x08 (uint8), the rank, big-endian int32 dims, then the data."""
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_idx_dataset(directory: Path, n_train: int = 40, n_test: int = 20, seed: int = 0) -> dict[str, bytes]:
    """Tiny MNIST-format files (gzip, as distributed) with 10 classes; returns the decompressed contents."""
    rng = np.random.default_rng(seed)
    contents = {
        "train-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte": idx_bytes(np.arange(n_train) % 10),
        "t10k-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte": idx_bytes(np.arange(n_test) % 10),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in contents.items():
        (directory / f"{name}.gz").write_bytes(gzip.compress(content))
    return contents


@pytest.fixture
def tiny_source(tmp_path: Path) -> tuple[idx.IdxSource, Path, dict[str, bytes]]:
    root = tmp_path / "data"
    contents = write_idx_dataset(root / "Tiny" / "raw")
    source = idx.IdxSource(
        name="tiny", torchvision_class="MNIST", folders=("Tiny/raw",),
        idx_sha256={k: hashlib.sha256(v).hexdigest() for k, v in contents.items()}, how_to_get="make it again")
    return source, root, contents


def test_loads_generated_idx_files(tiny_source, monkeypatch):
    source, root, contents = tiny_source
    monkeypatch.setattr(idx, "_download", lambda *a: None)
    ds = idx.load_idx(source, root)
    assert ds.train.images.shape == (40, 1, 28, 28) and ds.test.images.shape == (20, 1, 28, 28)
    assert ds.train.images.dtype == torch.float32 and ds.train.labels.dtype == torch.int64
    assert ds.num_classes == 10 and ds.input_shape(224) == (1, 28, 28)
    # Normalised with the training split's own statistics.
    assert abs(float(ds.train.images.mean())) < 1e-5 and abs(float(ds.train.images.std()) - 1) < 1e-2
    raw = np.frombuffer(contents["train-images-idx3-ubyte"], dtype=np.uint8, offset=16).reshape(40, 28, 28)
    restored = ds.train.images[:, 0].numpy() * ds.std + ds.mean
    np.testing.assert_allclose(restored * 255, raw, atol=1e-3)
    assert ds.checksums == {k: hashlib.sha256(v).hexdigest() for k, v in contents.items()}


def test_accepts_torchvision_md5_of_the_archive(tiny_source, monkeypatch):
    source, root, _ = tiny_source
    packed = (root / "Tiny/raw/train-images-idx3-ubyte.gz").read_bytes()
    md5s = {f"{n}.gz": hashlib.md5((root / f"Tiny/raw/{n}.gz").read_bytes()).hexdigest() for n in idx.IDX_FILES}
    monkeypatch.setattr(idx, "_torchvision_md5", lambda cls: md5s)
    no_content_sums = dataclasses.replace(source, idx_sha256={})
    assert idx.load_idx(no_content_sums, root).train.images.shape[0] == 40
    assert hashlib.md5(packed).hexdigest() == md5s["train-images-idx3-ubyte.gz"]


def test_checksum_mismatch_is_refused(tiny_source, monkeypatch):
    source, root, contents = tiny_source
    tampered = bytearray(contents["t10k-images-idx3-ubyte"])
    tampered[100] ^= 0xFF
    (root / "Tiny/raw/t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(tampered)))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz fails its checksum.*make it again"):
        idx.load_idx(source, root)


def test_truncated_archive_is_refused(tiny_source):
    source, root, _ = tiny_source
    path = root / "Tiny/raw/train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match="truncated or not gzip"):
        idx.load_idx(source, root)


def test_truncated_content_is_refused():
    content = idx_bytes(np.zeros((3, 28, 28)))[:-10]
    with pytest.raises(DataError, match="truncated"):
        idx._parse_idx(content, Path("x"))


def test_missing_dataset_says_which_files_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "_download", lambda *a: None)
    source = dataclasses.replace(idx.MNIST, extra_dirs=())
    with pytest.raises(DataError) as info:
        idx.load_idx(source, tmp_path)
    message = str(info.value)
    assert "mnist not found" in message and "train-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "MNIST/raw") in message and "MNIST/raw" in message and "\n" not in message


def test_offline_download_failure_is_a_clean_miss(tmp_path):
    # No network here (and none needed): torchvision's download fails and we report the dataset as missing.
    source = dataclasses.replace(idx.MNIST, extra_dirs=())
    with pytest.raises(DataError, match="download failed or offline"):
        idx.load_idx(source, tmp_path)


@pytest.mark.skipif(not idx.DEBIAN_FASHION_MNIST.exists(), reason="Debian's dataset-fashion-mnist not installed")
def test_debian_fashion_mnist_is_found_and_verified(tmp_path):
    ds = data.load("fashion_mnist", tmp_path)
    assert ds.source == str(idx.DEBIAN_FASHION_MNIST)
    assert len(ds.train.labels) == 60000 and len(ds.test.labels) == 10000
    assert torch.bincount(ds.train.labels).tolist() == [6000] * 10
    assert ds.checksums == idx.FASHION_MNIST.idx_sha256


def test_digits_split_is_fixed():
    first, second = digits.load_digits(Path(".")), digits.load_digits(Path("."))
    assert len(first.train.labels) + len(first.test.labels) == 1797
    assert torch.equal(first.test.labels, second.test.labels)
    assert first.input_shape(224) == (1, 8, 8)


def test_balanced_subset():
    labels = torch.arange(100) % 4
    chosen = data.balanced_subset(labels, 5, seed=0, what="train")
    assert torch.bincount(labels[chosen]).tolist() == [5, 5, 5, 5]
    assert torch.equal(chosen, data.balanced_subset(labels, 5, seed=0, what="train"))
    assert not torch.equal(chosen, data.balanced_subset(labels, 5, seed=1, what="train"))
    assert torch.equal(data.balanced_subset(labels, None, seed=0, what="train"), torch.arange(100))
    with pytest.raises(ConfigError, match="data.train_per_class: 26 requested but class 0 has only 25"):
        data.balanced_subset(labels, 26, seed=0, what="train")


def test_data_root_prefers_explicit_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "env"))
    assert data.data_root(tmp_path / "x") == tmp_path / "x"
    assert data.data_root() == tmp_path / "env"
    monkeypatch.delenv("HARNESS_DATA")
    assert data.data_root() == Path("data")


def six_classes() -> data.Dataset:
    labels = torch.arange(60) % 6
    split = data.TensorSplit(torch.arange(60, dtype=torch.float32).reshape(60, 1, 1, 1), labels)
    test = data.TensorSplit(torch.arange(30, dtype=torch.float32).reshape(30, 1, 1, 1), torch.arange(30) % 6)
    return data.Dataset("six", split, test, 6, "memory")


def test_validation_classes_are_held_out_whole_and_their_test_items_scored_nowhere():
    from harness.schema import DataConfig

    cfg = DataConfig(dataset="digits", split={"name": "first", "seen": 4}, val_classes=1, train_per_class=5)
    parts = data.run_splits(six_classes(), cfg)
    assert parts.seen == [0, 1, 2] and parts.val_classes == [3]
    assert set(parts.train.labels.tolist()) == {0, 1, 2} and torch.bincount(parts.train.labels).tolist() == [5] * 3
    assert set(parts.val.labels.tolist()) == {3} and len(parts.val) == 5  # subset like the training classes
    assert set(parts.test.labels.tolist()) == {0, 1, 2}
    assert set(parts.unseen.labels.tolist()) == {4, 5}  # class 3's test items: neither test nor unseen
    with pytest.raises(ConfigError, match="data.val_classes: 4 validation classes leave none of the 4"):
        data.run_splits(six_classes(), cfg.model_copy(update={"val_classes": 4}))
    with pytest.raises(Exception, match="val_per_class and val_classes each hold out"):
        DataConfig(dataset="digits", val_classes=1, val_per_class=2)


def test_validation_classes_leave_earlier_run_ids_alone():
    from harness import identity

    config = {"data": {"dataset": "digits", "val_classes": None}, "train": {}, "eval": {}}
    assert identity.run_id(config) == identity.run_id({"data": {"dataset": "digits"}, "train": {}, "eval": {}})
    assert identity.run_id({**config, "data": {"dataset": "digits", "val_classes": 2}}) != identity.run_id(config)


def test_shuffled_labels_keep_every_image_and_class_size_and_only_the_training_split_changes():
    from harness.schema import DataConfig

    cfg = DataConfig(dataset="digits", split={"name": "first", "seen": 4}, train_per_class=5)
    plain = data.run_splits(six_classes(), cfg)
    shuffled = data.run_splits(six_classes(), cfg.model_copy(update={"permute_labels": True}))
    assert torch.equal(plain.train.images, shuffled.train.images)  # the same images, in the same order
    assert torch.equal(torch.bincount(plain.train.labels), torch.bincount(shuffled.train.labels))
    assert not torch.equal(plain.train.labels, shuffled.train.labels)
    assert torch.equal(plain.unseen.labels, shuffled.unseen.labels) and torch.equal(plain.test.labels,
                                                                                      shuffled.test.labels)
    again = data.run_splits(six_classes(), cfg.model_copy(update={"permute_labels": True}))
    assert torch.equal(again.train.labels, shuffled.train.labels)  # seeded by subset_seed
    other = data.run_splits(six_classes(), cfg.model_copy(update={"permute_labels": True, "subset_seed": 1}))
    assert not torch.equal(other.train.labels, shuffled.train.labels)
