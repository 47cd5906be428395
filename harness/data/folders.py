"""Image-file datasets for deep metric learning (CUB-200-2011, Cars-196): found on disk, class-disjoint split, decoded
per batch through the DML image pipeline defined here (random-resized-crop training view, centre-crop test view)."""

from __future__ import annotations

import contextlib
import random
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import torch
import torch.utils.data

from harness.data import Dataset, FileSplit
from harness.files import file_hash
from harness.errors import DataError

# torchvision's ImageNet-pretrained backbones expect inputs normalised with these statistics.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _safe_relative(text: str, where: str) -> PurePosixPath:
    """A metadata path that stays inside the dataset folder; anything else means the file is not what we think."""
    rel = PurePosixPath(text)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise DataError(f"{where}: image path {text!r} is not relative to the dataset folder")
    return rel


def _check_class(class_id: int, num_classes: int, where: str) -> None:
    if not 1 <= class_id <= num_classes:
        raise DataError(f"{where}: class {class_id} outside 1..{num_classes}")


def _class_disjoint(name: str, paths: Sequence[Path], class_ids: Sequence[int], num_classes: int,
                    source: Path, checksums: dict[str, str], listed_in: str) -> Dataset:
    """The DML protocol: the first half of the classes trains, the second half tests; every image of a class
    goes to its class's side (the official per-image train/test lists are not used)."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{name}: {len(missing)} of {len(paths)} images listed in {listed_in} are missing, the first "
                        f"is {missing[0]}; extract the image archive again")
    boundary = num_classes // 2
    labels = torch.tensor(class_ids, dtype=torch.int64) - 1
    is_train = labels < boundary

    def side(mask: torch.Tensor) -> FileSplit:
        chosen = mask.nonzero().flatten().tolist()
        return FileSplit(tuple(paths[i] for i in chosen), labels[mask].clone())

    return Dataset(name=name, train=side(is_train), test=side(~is_train), num_classes=num_classes,
                   source=str(source), checksums=checksums, mean=IMAGENET_MEAN, std=IMAGENET_STD)


# --- CUB-200-2011 -----------------------------------------------------------------------------------------------

CUB_FOLDER = "CUB_200_2011"
CUB_ARCHIVE = "CUB_200_2011.tgz"
# The Caltech data record (the same one pytorch-metric-learning downloads from): its page, and the archive in it.
CUB_URL = "https://data.caltech.edu/records/65de6-vp158"
CUB_ARCHIVE_URL = f"{CUB_URL}/files/{CUB_ARCHIVE}"
CUB_CLASSES = 200
# The md5 commonly published for CUB_200_2011.tgz (e.g. by dataset loaders that download it); it could not be
# checked against the real archive offline here. A mismatch is refused rather than extracted.
CUB_TGZ_MD5 = "97eceeb196236b17998738112f37df78"


def _read_id_table(path: Path, value_is_int: bool) -> dict[int, tuple[str | int, int]]:
    """'<id> <value>' lines -> {id: (value, line number)}; every malformed line is reported as file:line."""
    table: dict[int, tuple[str | int, int]] = {}
    expected = "<image id> <class id>" if value_is_int else "<image id> <relative path>"
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.split(None, 1)
            try:
                if len(fields) != 2:
                    raise ValueError
                image_id = int(fields[0])
                value: str | int = int(fields[1]) if value_is_int else fields[1].strip()
            except ValueError:
                raise DataError(f"{path}:{number}: expected '{expected}', got {line.rstrip()!r}") from None
            if image_id in table:
                raise DataError(f"{path}:{number}: image id {image_id} already on line {table[image_id][1]}")
            table[image_id] = (value, number)
    return table


def _extract_cub(root: Path) -> None:
    """Unpack the official archive into root after checking its md5; a partial unpack never looks like a dataset."""
    archive = root / CUB_ARCHIVE
    md5 = file_hash(archive, "md5")
    if md5 != CUB_TGZ_MD5:
        raise DataError(f"{archive} fails its checksum (md5 {md5}, the published archive has {CUB_TGZ_MD5}); "
                        f"delete it and download it again from {CUB_URL}")
    # Unpack beside the target and move the folder into place at the end, so that an interrupted run leaves
    # only a scratch folder behind; filter="data" refuses links and paths that leave the scratch folder.
    with tempfile.TemporaryDirectory(prefix=".cub-extract-", dir=root) as scratch:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(scratch, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{archive} cannot be extracted ({exc}); delete it and download it again "
                            f"from {CUB_URL}") from None
        unpacked = Path(scratch) / CUB_FOLDER
        if not (unpacked / "images.txt").is_file():
            raise DataError(f"{archive} has no {CUB_FOLDER}/images.txt; it is not the CUB-200-2011 archive")
        if not (root / CUB_FOLDER).exists():  # another process may have finished first
            shutil.move(str(unpacked), root / CUB_FOLDER)


def load_cub200(root: Path) -> Dataset:
    """CUB-200-2011 as the official archive unpacks: classes 1-100 train, 101-200 test."""
    folder = root / CUB_FOLDER
    if not (folder / "images.txt").is_file() and (root / CUB_ARCHIVE).is_file():
        _extract_cub(root)
    if not (folder / "images.txt").is_file():
        raise DataError(f"cub200 not found: extract {CUB_ARCHIVE} (from {CUB_URL}) so that {folder}/images.txt "
                        f"exists, or put the .tgz in {root}")
    images_txt, labels_txt = folder / "images.txt", folder / "image_class_labels.txt"
    if not labels_txt.is_file():
        raise DataError(f"cub200: {labels_txt} is missing; extract {CUB_ARCHIVE} again")
    files = _read_id_table(images_txt, value_is_int=False)
    classes = _read_id_table(labels_txt, value_is_int=True)
    paths, class_ids = [], []
    for image_id in sorted(files):
        rel, number = files[image_id]
        if image_id not in classes:
            raise DataError(f"{images_txt}:{number}: image id {image_id} has no line in {labels_txt.name}")
        class_id, class_line = classes[image_id]
        _check_class(int(class_id), CUB_CLASSES, f"{labels_txt}:{class_line}")
        paths.append(folder / "images" / _safe_relative(str(rel), f"{images_txt}:{number}"))
        class_ids.append(int(class_id))
    extra = sorted(set(classes) - set(files))
    if extra:
        raise DataError(f"{labels_txt}:{classes[extra[0]][1]}: image id {extra[0]} is not in {images_txt.name}")
    metadata = [images_txt, labels_txt] + [p for p in [folder / "classes.txt"] if p.is_file()]
    return _class_disjoint("cub200", paths, class_ids, CUB_CLASSES, folder, {p.name: file_hash(p) for p in metadata},
                           images_txt.name)


# --- Cars-196 ---------------------------------------------------------------------------------------------------

CARS_CLASSES = 196
CARS_ALL_IN_ONE_FOLDERS = ("cars196", "CARS196", ".")  # where people unpack car_ims.tgz + cars_annos.mat
CARS_TORCHVISION_FOLDER = "stanford_cars"  # torchvision.datasets.StanfordCars(root)


def _mat_annotations(path: Path, fields: tuple[str, ...]) -> list[dict[str, object]]:
    """The `annotations` struct array of a Stanford Cars .mat file, one dict per image, fields checked."""
    import scipy.io

    try:
        # squeeze_me turns 1x1 cells into scalars and strings, as torchvision reads these files.
        annotations = scipy.io.loadmat(str(path), squeeze_me=True)["annotations"]
    # scipy raises several types for a damaged or foreign file (MatReadError, ValueError, OSError, KeyError...);
    # all of them mean the same to the user.
    except Exception as exc:  # noqa: BLE001 (see above)
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise DataError(f"{path} is not a Stanford Cars annotation file ({detail}); fetch it again") from None
    annotations = np.atleast_1d(annotations)
    names = annotations.dtype.names or ()
    lacking = [f for f in fields if f not in names]
    if lacking:
        raise DataError(f"{path}: annotations lack the field(s) {', '.join(lacking)} (has {', '.join(names)})")
    return [{f: record[f] for f in fields} for record in annotations]


def _class_of(record: dict[str, object], path: Path, index: int) -> int:
    where = f"{path}: annotation {index + 1}"
    try:
        class_id = int(np.asarray(record["class"]).item())
    except (TypeError, ValueError):
        raise DataError(f"{where}: class {record['class']!r} is not one integer") from None
    _check_class(class_id, CARS_CLASSES, where)
    return class_id


def _cars_all_in_one(folder: Path) -> Dataset:
    """car_ims/ + cars_annos.mat: one list of all 16,185 images with relative_im_path, class and a test flag."""
    annos = folder / "cars_annos.mat"
    paths, class_ids = [], []
    for i, record in enumerate(_mat_annotations(annos, ("relative_im_path", "class"))):
        paths.append(folder / _safe_relative(str(record["relative_im_path"]), f"{annos}: annotation {i + 1}"))
        class_ids.append(_class_of(record, annos, i))
    return _class_disjoint("cars196", paths, class_ids, CARS_CLASSES, folder, {annos.name: file_hash(annos)},
                           annos.name)


def _cars_torchvision(folder: Path) -> Dataset:
    """torchvision's StanfordCars layout: the official train and test lists, pooled before the class split."""
    lists = [(folder / "devkit" / "cars_train_annos.mat", folder / "cars_train"),
             (folder / "cars_test_annos_withlabels.mat", folder / "cars_test")]
    paths, class_ids, checksums = [], [], {}
    for annos, images in lists:
        if not annos.is_file():
            raise DataError(f"cars196: {annos} is missing (torchvision's StanfordCars layout needs it)")
        for i, record in enumerate(_mat_annotations(annos, ("fname", "class"))):
            paths.append(images / _safe_relative(str(record["fname"]), f"{annos}: annotation {i + 1}"))
            class_ids.append(_class_of(record, annos, i))
        checksums[annos.name] = file_hash(annos)
    meta = folder / "devkit" / "cars_meta.mat"  # class names only: recorded so that the copy is identified
    if meta.is_file():
        checksums[meta.name] = file_hash(meta)
    return _class_disjoint("cars196", paths, class_ids, CARS_CLASSES, folder, checksums,
                           "the annotation .mat files")


def load_cars196(root: Path) -> Dataset:
    """Cars-196 in either layout people have (torchvision's is tried first): classes 1-98 train, 99-196 test."""
    torchvision_folder = root / CARS_TORCHVISION_FOLDER
    if (torchvision_folder / "devkit" / "cars_train_annos.mat").is_file():
        return _cars_torchvision(torchvision_folder)
    for name in CARS_ALL_IN_ONE_FOLDERS:
        if (root / name / "cars_annos.mat").is_file():
            return _cars_all_in_one(root if name == "." else root / name)
    raise DataError(f"cars196 not found: put cars_annos.mat and car_ims/ (the all-in-one release) in {root}/cars196, "
                    f"or torchvision's StanfordCars files in {torchvision_folder} (devkit/cars_train_annos.mat, "
                    "cars_test_annos_withlabels.mat, cars_train/, cars_test/); the Stanford page is offline, use a mirror")




# --- Image pipeline ---------------------------------------------------------------------------------------------

def train_transform(size: int = 224, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> Callable:
    """The usual DML augmentation: a random crop of random area and aspect, resized to size, and a random flip.

    The crop is taken from the full image (no resize first), as in the Proxy Anchor and MLRC code.
    """
    from torchvision.transforms import v2

    # Geometry on the PIL image (cheaper than on a float tensor), conversion and normalisation last.
    return v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(),
                       v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std)),
                       v2.ToPureTensor()])


def test_transform(size: int = 224, resize: int = 256, mean: Sequence[float] = IMAGENET_MEAN,
                   std: Sequence[float] = IMAGENET_STD) -> Callable:
    """Deterministic evaluation view: shorter side to `resize`, then the central size x size crop."""
    from torchvision.transforms import v2

    return v2.Compose([v2.Resize(resize, antialias=True), v2.CenterCrop(size),
                       v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std)),
                       v2.ToPureTensor()])


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run a block with torch, random and numpy seeded, then restore their state (the caller's RNG is untouched)."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


class ImageFolderSplit(torch.utils.data.Dataset):
    """(image tensor, label) pairs of a FileSplit, decoded on demand.

    An index may come with a seed, `(index, seed)` as the file pipeline passes it: the transform then draws its
    randomness from that seed alone, so an augmented sample does not depend on which worker made it.
    """

    def __init__(self, split: FileSplit, transform: Callable) -> None:
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        path = self.split.paths[index]
        from PIL import Image

        try:
            with Image.open(path) as image:
                # CUB has a few greyscale (and one CMYK) images; the backbone wants three channels.
                rgb = image.convert("RGB")
        except OSError as exc:  # PIL's UnidentifiedImageError and "image file is truncated" are OSErrors
            raise DataError(f"{path} cannot be decoded ({exc}); extract the image archive again") from None
        with _seeded(seed) if seed is not None else contextlib.nullcontext():
            tensor = self.transform(rgb)
        return tensor, int(self.split.labels[index])


def seed_worker(worker_id: int) -> None:
    # DataLoader seeds each worker's torch RNG from the loader's generator (base seed + worker id); random and
    # numpy follow it, for randomness outside __getitem__ (which the per-sample seeds already cover).
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
