"""data: CIFAR-10/100 from files written in the official "python version" format, md5 pins, safe unpickling."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import urllib.error
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from harness import data
from harness.data import cifar
from harness.errors import DataError

TRAIN_PER_BATCH = 4


def batch_bytes(rows: np.ndarray, labels: list[int], label_key: bytes = b"labels",
                extra: dict[bytes, object] | None = None) -> bytes:
    """One batch as Python 3 writes it: protocol 2, bytes keys, rows of 3072 uint8 values (R, G, B planes)."""
    batch = {b"batch_label": b"test", b"data": rows.astype(np.uint8), label_key: labels, **(extra or {})}
    return pickle.dumps(batch, protocol=2)


class Py2Pickler(pickle._Pickler):
    """Pickles as Python 2 did for the official files: str and bytes as BINSTRING, NumPy 1 module paths."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def save_str(self, obj: str | bytes) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw if len(raw) < 256
                   else pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    def save_global(self, obj: object, name: str | None = None) -> None:
        if obj is np.empty(0).__reduce__()[0]:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)

    dispatch[str] = dispatch[bytes] = save_str
    dispatch[type(np.dtype)] = save_global


def py2_batch_bytes(rows: np.ndarray, labels: list[int], label_key: bytes = b"labels") -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump({b"data": rows.astype(np.uint8), label_key: labels})
    return buffer.getvalue()


def write_cifar10(root: Path, py2: bool = False) -> dict[str, np.ndarray]:
    """Five training batches of 4 images, a test batch of 10 (one per class) and the meta file."""
    rng = np.random.default_rng(0)
    folder = root / cifar.CIFAR10.folder
    folder.mkdir(parents=True, exist_ok=True)
    dump = py2_batch_bytes if py2 else batch_bytes
    rows = {}
    for i, name in enumerate(cifar.CIFAR10.train_files):
        # Channel-dependent brightness so that per-channel statistics differ.
        rows[name] = rng.integers(0, 256, (TRAIN_PER_BATCH, 3072)) * np.repeat([1.0, 0.5, 0.25], 1024)
        labels = [(i * TRAIN_PER_BATCH + k) % 10 for k in range(TRAIN_PER_BATCH)]
        (folder / name).write_bytes(dump(rows[name], labels))
    rows["test_batch"] = np.full((10, 3072), 200)  # unlike the training images: must not set the statistics
    (folder / "test_batch").write_bytes(dump(rows["test_batch"], list(range(10))))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]}, protocol=2))
    return {k: v.astype(np.uint8) for k, v in rows.items()}


def pin_md5s(monkeypatch: pytest.MonkeyPatch, folder: Path) -> dict[str, str]:
    """Stand in for torchvision's list: the md5s of the files now in `folder`."""
    md5s = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    monkeypatch.setattr(cifar, "_torchvision_cifar_md5", lambda class_name: md5s)
    return md5s


@pytest.fixture
def cifar10(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path / "data"
    rows = write_cifar10(root)
    pin_md5s(monkeypatch, root / cifar.CIFAR10.folder)
    monkeypatch.setattr(cifar, "_download_cifar", lambda *a: pytest.fail("files are present: no download"))
    return root, rows


def restored(ds: data.Dataset, images: torch.Tensor) -> np.ndarray:
    """Pixels back in 0..255, undoing the per-channel normalisation."""
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (ds.mean, ds.std))
    return ((images * std + mean) * 255).numpy()


def test_loads_generated_cifar10(cifar10):
    root, rows = cifar10
    ds = data.DATASETS.get("cifar10")(root)
    assert ds.train.images.shape == (20, 3, 32, 32) and ds.test.images.shape == (10, 3, 32, 32)
    assert ds.train.images.dtype == torch.float32 and ds.train.labels.dtype == torch.int64
    assert ds.num_classes == 10 and ds.input_shape(224) == (3, 32, 32) and ds.source == str(root / "cifar-10-batches-py")
    assert ds.train.labels.tolist() == [k % 10 for k in range(20)] and ds.test.labels.tolist() == list(range(10))
    raw_train = np.concatenate([rows[n] for n in cifar.CIFAR10.train_files]).reshape(20, 3, 32, 32)
    np.testing.assert_allclose(restored(ds, ds.train.images), raw_train, atol=1e-3)
    folder = root / "cifar-10-batches-py"
    assert ds.checksums == {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in cifar.CIFAR10.files}


def test_pixel_order_is_channel_row_column(cifar10, monkeypatch):
    root, _ = cifar10
    folder = root / "cifar-10-batches-py"
    marked = np.zeros((TRAIN_PER_BATCH, 3072), dtype=np.uint8)
    marked[2, 1 * 1024 + 5 * 32 + 7] = 255  # image 2, green plane, row 5, column 7
    (folder / "data_batch_1").write_bytes(batch_bytes(marked, [0, 1, 2, 3]))
    pin_md5s(monkeypatch, folder)
    pixels = restored(ds := cifar.load_cifar(cifar.CIFAR10, root), ds.train.images[2])[0]
    assert pixels[1, 5, 7] == pytest.approx(255, abs=1e-3)
    pixels[1, 5, 7] = 0
    np.testing.assert_allclose(pixels, 0, atol=1e-3)


def test_normalised_per_channel_with_training_statistics(cifar10):
    root, rows = cifar10
    ds = cifar.load_cifar(cifar.CIFAR10, root)
    train = np.concatenate([rows[n] for n in cifar.CIFAR10.train_files]).reshape(20, 3, 1024) / 255.0
    np.testing.assert_allclose(ds.mean, train.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(ds.std, train.std(axis=(0, 2)), rtol=1e-12)
    assert isinstance(ds.mean, tuple) and len(ds.mean) == 3 and ds.mean[0] > ds.mean[1] > ds.mean[2]
    per_channel = ds.train.images.transpose(0, 1).reshape(3, -1)
    np.testing.assert_allclose(per_channel.mean(dim=1), 0, atol=1e-5)
    np.testing.assert_allclose(per_channel.std(dim=1, unbiased=False), 1, atol=1e-4)
    # The test split is scaled with the training statistics, not its own (it is constant: its own std is 0).
    expected = (200 / 255.0 - np.array(ds.mean)) / np.array(ds.std)
    np.testing.assert_allclose(ds.test.images[0, :, 0, 0], expected, rtol=1e-5)


def test_reads_python2_pickles_as_in_the_official_archive(tmp_path, monkeypatch):
    rows = write_cifar10(tmp_path, py2=True)
    pin_md5s(monkeypatch, tmp_path / cifar.CIFAR10.folder)
    ds = cifar.load_cifar(cifar.CIFAR10, tmp_path)
    np.testing.assert_allclose(restored(ds, ds.test.images), rows["test_batch"].reshape(10, 3, 32, 32), atol=1e-3)


def test_cifar100_uses_fine_labels(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    fine_train, fine_test = [k % 100 for k in range(200)], list(range(100))
    for name, fine in (("train", fine_train), ("test", fine_test)):
        coarse = [f // 5 for f in fine]
        (folder / name).write_bytes(batch_bytes(rng.integers(0, 256, (len(fine), 3072)), fine, b"fine_labels",
                                                {b"coarse_labels": coarse}))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": []}, protocol=2))
    pin_md5s(monkeypatch, folder)
    ds = data.DATASETS.get("cifar100")(tmp_path)
    assert ds.num_classes == 100 and ds.train.images.shape == (200, 3, 32, 32)
    assert ds.train.labels.tolist() == fine_train and ds.test.labels.tolist() == fine_test
    assert set(ds.checksums) == {"train", "test", "meta"}


def test_checksum_mismatch_is_refused_before_unpickling(cifar10, monkeypatch):
    root, _ = cifar10
    marker = root / "unpickled"
    # A file that would leave a marker if anything unpickled it; its md5 is not the pinned one.
    (root / "cifar-10-batches-py/data_batch_1").write_bytes(pickle.dumps(MakesMarker(marker), protocol=2))
    unpickled = []
    monkeypatch.setattr(cifar, "_unpickle_batch", lambda *a: unpickled.append(a))
    with pytest.raises(DataError) as info:
        cifar.load_cifar(cifar.CIFAR10, root)
    message = str(info.value)
    assert "data_batch_1 fails its checksum" in message and "delete it and fetch it again" in message
    assert "\n" not in message and unpickled == [] and not marker.exists()


def test_truncated_batch_is_refused(cifar10, monkeypatch):
    root, _ = cifar10
    path = root / "cifar-10-batches-py/data_batch_2"
    path.write_bytes(path.read_bytes()[:5000])
    pin_md5s(monkeypatch, path.parent)  # even with a matching md5, the parser refuses it
    with pytest.raises(DataError, match=r"data_batch_2 is truncated or not a CIFAR batch \(.*\); delete it") as info:
        cifar.load_cifar(cifar.CIFAR10, root)
    assert "\n" not in str(info.value)


class MakesMarker:
    """A hostile pickle's payload, kept harmless: unpickling it would create a directory."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_hostile_pickle_is_refused_without_running(cifar10, monkeypatch):
    root, _ = cifar10
    marker = root / "unpickled"
    path = root / "cifar-10-batches-py/test_batch"
    path.write_bytes(pickle.dumps({b"data": MakesMarker(marker), b"labels": []}, protocol=2))
    pin_md5s(monkeypatch, path.parent)  # as if the md5 pin had been defeated: the unpickler is the second guard
    assert pickle.loads(path.read_bytes()) and marker.exists()  # plain pickle would have run it
    marker.rmdir()
    with pytest.raises(DataError, match=rf"test_batch: the CIFAR reader refuses to unpickle {os.name}\.mkdir"):
        cifar.load_cifar(cifar.CIFAR10, root)
    assert not marker.exists()


@pytest.mark.parametrize(("batch", "message"), [
    ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "b'data' is not a uint8 array of 3072 values"),
    ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "b'data' is not a uint8 array"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "b'labels' is not a list of 2 integers"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 1]}, "b'labels' is not a list of 2 integers"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"labels outside 0\.\.9"),
    ([1, 2], "is not a CIFAR batch \\(a list, not a dict\\)"),
])
def test_malformed_batch_is_refused(cifar10, monkeypatch, batch, message):
    root, _ = cifar10
    path = root / "cifar-10-batches-py/data_batch_3"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    pin_md5s(monkeypatch, path.parent)
    with pytest.raises(DataError, match=message):
        cifar.load_cifar(cifar.CIFAR10, root)


def test_missing_files_say_which_where_and_how(tmp_path, monkeypatch):
    tried = []
    monkeypatch.setattr(cifar, "_download_cifar", lambda source, root: tried.append(root))
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py/test_batch").unlink()
    with pytest.raises(DataError) as info:
        cifar.load_cifar(cifar.CIFAR10, tmp_path)
    message = str(info.value)
    assert tried == [tmp_path] and "\n" not in message
    assert message.startswith("cifar10 not found: need data_batch_1, data_batch_2")
    assert f"in {tmp_path / 'cifar-10-batches-py'} (missing test_batch; download failed or offline)" in message
    assert f"https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and extract it into {tmp_path}" in message


def test_files_the_download_brings_are_used(tmp_path, monkeypatch):
    def fetch(source: cifar.CifarSource, root: Path) -> None:
        write_cifar10(root)
        pin_md5s(monkeypatch, root / source.folder)

    monkeypatch.setattr(cifar, "_download_cifar", fetch)
    assert cifar.load_cifar(cifar.CIFAR10, tmp_path).train.images.shape == (20, 3, 32, 32)


def test_offline_download_failure_is_a_clean_miss(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", offline)
    with pytest.raises(DataError, match=r"cifar100 not found: need train, test, meta in .*cifar-100-python"):
        cifar.load_cifar(cifar.CIFAR100, tmp_path)


def test_registered_and_md5s_read_from_torchvision():
    assert "cifar10" in data.DATASETS and "cifar100" in data.DATASETS
    cifar10, cifar100 = cifar._torchvision_cifar_md5("CIFAR10"), cifar._torchvision_cifar_md5("CIFAR100")
    assert set(cifar10) == set(cifar.CIFAR10.files) and set(cifar100) == set(cifar.CIFAR100.files)
    assert cifar10["test_batch"] == "40351d587109b95175f43aff81a1287e"
    assert cifar100["train"] == "16019d7e3df5f24257cddd939b257f8d"
