"""images: CUB-200-2011 and Cars-196 from tiny copies in their real layouts, the class split, errors, seeded loading."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from harness.data import folders as images
from harness.data import DATASETS
from harness.errors import DataError

SIZE = 32  # crops small enough to keep the pipeline tests fast
CUB_CLASSES = (99, 100, 101, 102)  # straddle the 100 | 101 boundary
CARS_CLASSES = (97, 98, 99, 100)  # straddle the 98 | 99 boundary
PER_CLASS = 2


def jpeg(path: Path, value: int, grey: bool = False) -> None:
    """A 40x30 JPEG whose pixels depend on value, so that different files give different tensors."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    pixels = rng.integers(0, 256, (30, 40) if grey else (30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels, mode="L" if grey else "RGB").save(path, format="JPEG")


def write_cub(root: Path) -> Path:
    """The official tree: images.txt, image_class_labels.txt, classes.txt and images/<class dir>/<file>.jpg;
    image 1 is greyscale (CUB has a few)."""
    folder = root / images.CUB_FOLDER
    image_lines, label_lines, class_lines = [], [], []
    image_id = 0
    for class_id in CUB_CLASSES:
        class_dir = f"{class_id:03d}.Bird_{class_id}"
        class_lines.append(f"{class_id} {class_dir}")
        for k in range(PER_CLASS):
            image_id += 1
            rel = f"{class_dir}/Bird_{class_id}_{k}.jpg"
            jpeg(folder / "images" / rel, image_id, grey=image_id == 1)
            image_lines.append(f"{image_id} {rel}")
            label_lines.append(f"{image_id} {class_id}")
    (folder / "images.txt").write_text("\n".join(image_lines) + "\n")
    (folder / "image_class_labels.txt").write_text("\n".join(label_lines) + "\n")
    (folder / "classes.txt").write_text("\n".join(class_lines) + "\n")
    return folder


def struct_array(records: list[dict[str, object]]) -> np.ndarray:
    """A 1xN MATLAB struct array, as scipy writes it from a structured numpy array of objects."""
    array = np.empty((1, len(records)), dtype=[(name, object) for name in records[0]])
    for i, record in enumerate(records):
        for name, value in record.items():
            array[0, i][name] = value
    return array


def box() -> dict[str, object]:
    return {f"bbox_{k}": np.array([[v]], dtype=np.uint16) for k, v in zip(("x1", "y1", "x2", "y2"), (1, 2, 30, 20))}


def write_cars_all_in_one(folder: Path) -> Path:
    """car_ims/00000k.jpg and cars_annos.mat with relative_im_path, class (uint8, as in the release) and test."""
    records = []
    for i, class_id in enumerate(c for c in CARS_CLASSES for _ in range(PER_CLASS)):
        rel = f"car_ims/{i + 1:06d}.jpg"
        jpeg(folder / rel, 100 + i)
        records.append({"relative_im_path": rel, **box(), "class": np.array([[class_id]], dtype=np.uint8),
                        "test": np.array([[i % 2]], dtype=np.uint8)})
    scipy.io.savemat(folder / "cars_annos.mat", {"annotations": struct_array(records)})
    return folder


def write_cars_torchvision(root: Path) -> Path:
    """torchvision's StanfordCars tree; the train and test lists reuse file names (00001.jpg in both folders)."""
    folder = root / "stanford_cars"
    for annos, images_dir, offset in [(folder / "devkit" / "cars_train_annos.mat", "cars_train", 0),
                                      (folder / "cars_test_annos_withlabels.mat", "cars_test", 50)]:
        records = []
        for i, class_id in enumerate(CARS_CLASSES):
            jpeg(folder / images_dir / f"{i + 1:05d}.jpg", offset + i)
            records.append({**box(), "class": np.array([[class_id]], dtype=np.uint8), "fname": f"{i + 1:05d}.jpg"})
        annos.parent.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(annos, {"annotations": struct_array(records)})
    names = np.array([f"Car {i}" for i in range(1, 197)], dtype=object)
    scipy.io.savemat(folder / "devkit" / "cars_meta.mat", {"class_names": names.reshape(1, -1)})
    return folder


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_both_datasets_are_registered():
    assert DATASETS.get("cub200") is images.load_cub200 and DATASETS.get("cars196") is images.load_cars196


def test_cub_class_disjoint_split_labels_and_checksums(tmp_path):
    folder = write_cub(tmp_path)
    ds = DATASETS.get("cub200")(tmp_path)
    assert ds.name == "cub200" and ds.num_classes == 200 and ds.source == str(folder)
    # Classes 99, 100 train and 101, 102 test, every image of a class on its side; labels are class id - 1.
    assert ds.train.labels.tolist() == [98, 98, 99, 99] and ds.test.labels.tolist() == [100, 100, 101, 101]
    assert ds.train.labels.dtype == torch.int64
    assert all(p.is_file() for p in ds.train.paths + ds.test.paths)
    assert ds.train.paths[0] == folder / "images" / "099.Bird_99" / "Bird_99_0.jpg"
    assert ds.checksums == {name: sha256(folder / name) for name in ("images.txt", "image_class_labels.txt",
                                                                     "classes.txt")}
    assert ds.mean == images.IMAGENET_MEAN and ds.input_shape(224) == (3, 224, 224)


@pytest.mark.parametrize("where", ["cars196", "CARS196", "."])
def test_cars_all_in_one_layout(tmp_path, where):
    folder = write_cars_all_in_one(tmp_path / where)
    ds = DATASETS.get("cars196")(tmp_path)
    assert ds.num_classes == 196 and ds.source == str(folder if where != "." else tmp_path)
    # The release's own test flag is ignored: classes 97, 98 train and 99, 100 test.
    assert ds.train.labels.tolist() == [96, 96, 97, 97] and ds.test.labels.tolist() == [98, 98, 99, 99]
    assert ds.train.paths[0] == folder / "car_ims" / "000001.jpg" and all(p.is_file() for p in ds.test.paths)
    assert ds.checksums == {"cars_annos.mat": sha256(folder / "cars_annos.mat")}


def test_cars_torchvision_layout_pools_train_and_test_lists(tmp_path):
    folder = write_cars_torchvision(tmp_path)
    ds = images.load_cars196(tmp_path)
    assert ds.train.labels.tolist() == [96, 97, 96, 97] and ds.test.labels.tolist() == [98, 99, 98, 99]
    assert ds.train.paths[:3] == (folder / "cars_train" / "00001.jpg", folder / "cars_train" / "00002.jpg",
                                  folder / "cars_test" / "00001.jpg")
    assert set(ds.checksums) == {"cars_train_annos.mat", "cars_test_annos_withlabels.mat", "cars_meta.mat"}
    assert ds.checksums["cars_meta.mat"] == sha256(folder / "devkit" / "cars_meta.mat")


def test_missing_cub_says_where_to_put_what(tmp_path):
    with pytest.raises(DataError) as err:
        images.load_cub200(tmp_path)
    message = str(err.value)
    assert "\n" not in message and "CUB_200_2011.tgz" in message and images.CUB_URL in message
    assert str(tmp_path / "CUB_200_2011" / "images.txt") in message


def test_missing_cars_says_where_to_put_what(tmp_path):
    with pytest.raises(DataError) as err:
        images.load_cars196(tmp_path)
    message = str(err.value)
    assert "\n" not in message and "cars_annos.mat" in message and str(tmp_path / "cars196") in message
    assert str(tmp_path / "stanford_cars") in message and "cars_train_annos.mat" in message


def test_missing_image_names_the_first_and_the_count(tmp_path):
    folder = write_cub(tmp_path)
    gone = folder / "images" / "101.Bird_101" / "Bird_101_1.jpg"
    gone.unlink()
    with pytest.raises(DataError, match=r"1 of 8 images listed in images.txt are missing") as err:
        images.load_cub200(tmp_path)
    assert str(gone) in str(err.value)


@pytest.mark.parametrize(("name", "line", "bad"), [
    ("images.txt", 3, "3"),  # no path
    ("images.txt", 2, "two 099.Bird_99/Bird_99_1.jpg"),  # id not a number
    ("image_class_labels.txt", 4, "4 hundred"),
    ("image_class_labels.txt", 5, "5 201"),  # outside 1..200
    ("images.txt", 6, "6 ../../etc/passwd"),  # leaves the dataset folder
])
def test_corrupt_cub_metadata_names_file_and_line(tmp_path, name, line, bad):
    folder = write_cub(tmp_path)
    lines = (folder / name).read_text().splitlines()
    lines[line - 1] = bad
    (folder / name).write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=f"^{folder / name}:{line}: "):
        images.load_cub200(tmp_path)


def test_cub_label_file_must_cover_every_image(tmp_path):
    folder = write_cub(tmp_path)
    labels = folder / "image_class_labels.txt"
    labels.write_text("\n".join(labels.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match=r"images.txt:8: image id 8 has no line in image_class_labels.txt"):
        images.load_cub200(tmp_path)


def test_corrupt_cars_annotations(tmp_path):
    folder = write_cars_all_in_one(tmp_path / "cars196")
    (folder / "cars_annos.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match="cars_annos.mat is not a Stanford Cars annotation file"):
        images.load_cars196(tmp_path)
    scipy.io.savemat(folder / "cars_annos.mat", {"annotations": struct_array(
        [{"relative_im_path": "car_ims/000001.jpg", "class": np.array([[197]], dtype=np.uint8)}])})
    with pytest.raises(DataError, match=r"cars_annos.mat: annotation 1: class 197 outside 1..196"):
        images.load_cars196(tmp_path)
    scipy.io.savemat(folder / "cars_annos.mat", {"annotations": struct_array([{"fname": "000001.jpg"}])})
    with pytest.raises(DataError, match="lack the field"):
        images.load_cars196(tmp_path)


def cub_archive(tmp_path: Path) -> bytes:
    """A .tgz of the tiny CUB tree, laid out as the official archive (CUB_200_2011/ at the top)."""
    source = tmp_path / "source"
    write_cub(source)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source / images.CUB_FOLDER, arcname=images.CUB_FOLDER)
    return buffer.getvalue()


def test_cub_archive_with_the_wrong_md5_is_refused(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / images.CUB_ARCHIVE).write_bytes(cub_archive(tmp_path))
    with pytest.raises(DataError, match=f"fails its checksum .*{images.CUB_TGZ_MD5}"):
        images.load_cub200(root)
    assert not (root / images.CUB_FOLDER).exists() and [p.name for p in root.iterdir()] == [images.CUB_ARCHIVE]


def test_cub_archive_with_the_pinned_md5_is_extracted_and_loaded(tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    content = cub_archive(tmp_path)
    (root / images.CUB_ARCHIVE).write_bytes(content)
    monkeypatch.setattr(images, "CUB_TGZ_MD5", hashlib.md5(content).hexdigest())
    ds = images.load_cub200(root)
    assert len(ds.train) == 4 and len(ds.test) == 4 and all(p.is_file() for p in ds.test.paths)
    assert sorted(p.name for p in root.iterdir()) == sorted([images.CUB_ARCHIVE, images.CUB_FOLDER])  # no scratch


def test_transforms_give_normalised_float_images(tmp_path):
    write_cub(tmp_path)
    ds = images.load_cub200(tmp_path)
    for transform in (images.train_transform(SIZE), images.test_transform(SIZE, resize=36)):
        x, label = images.ImageFolderSplit(ds.test, transform)[0]
        assert type(x) is torch.Tensor and x.shape == (3, SIZE, SIZE) and x.dtype == torch.float32
        assert label == 100 and x.min() < 0 < x.max()  # normalised, not in [0, 1]


def test_greyscale_images_become_three_equal_channels(tmp_path):
    write_cub(tmp_path)
    ds = images.load_cub200(tmp_path)
    with Image.open(ds.train.paths[0]) as image:
        assert image.mode == "L"
    x, _ = images.ImageFolderSplit(ds.train, images.test_transform(SIZE, resize=36))[0]
    pixels = x * torch.tensor(images.IMAGENET_STD).view(3, 1, 1) + torch.tensor(images.IMAGENET_MEAN).view(3, 1, 1)
    torch.testing.assert_close(pixels[0], pixels[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(pixels[0], pixels[2], atol=1e-5, rtol=0)


def test_undecodable_image_names_the_file(tmp_path):
    write_cub(tmp_path)
    split = images.load_cub200(tmp_path).test
    split.paths[1].write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=f"{split.paths[1]} cannot be decoded"):
        images.ImageFolderSplit(split, images.test_transform(SIZE, 36))[1]
