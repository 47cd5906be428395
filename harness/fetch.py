"""Downloads for the full profiles (`harness fetch DATASET`): resumable, checksum-verified, safely extracted.

URLs and checksums are the ones the loaders already trust (torchvision's lists for MNIST and CIFAR, the CUB
archive's md5 in harness.data.folders, the hash prefix in torch.hub's ResNet-50 file name); nothing is stored
twice. A transfer writes `<file>.part` and continues it with an HTTP Range request when cut off (within the
same command, then on the next one); only a file whose checksum matches takes its real name. Archives are
unpacked in a scratch folder inside the destination with tarfile's 'data' filter (no links out, no absolute
paths, no '..'), and moved into place only when complete.
"""

from __future__ import annotations

import functools
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from pathlib import Path

from harness.catalog import DATA_ROOT_HELP
from harness.errors import DataError, HarnessError, suggest
from harness.files import file_hash

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0  # one read with nothing arriving
# A whole file's budget: a server that sends a byte every few seconds never trips TIMEOUT_S; at this many bytes a
# second the file would take longer than anyone waits. The transfer stops (its .part kept, so a rerun resumes).
MIN_BYTES_PER_S = 20_000
MIN_DEADLINE_S = 300.0
PROGRESS_S = 30.0  # a line on how far a transfer is, this often
ATTEMPTS = 4  # one transfer and up to three resumptions within one command
RETRY_PAUSE_S = 1.0


@dataclass(frozen=True)
class Remote:
    """One file to download: where from, how to recognise it, and where it goes under the destination."""

    url: str
    algorithm: str  # "md5", "sha256", or "sha256-prefix" (torch.hub's file names carry one)
    digest: str
    folder: str = ""  # relative to the destination root
    # Upper bound of the file's size (the real one, rounded up): a server sending more is refused, never written.
    max_bytes: int = 2_000_000_000

    @property
    def deadline_s(self) -> float:
        return max(MIN_DEADLINE_S, self.max_bytes / MIN_BYTES_PER_S)

    @property
    def name(self) -> str:
        return Path(urllib.parse.urlparse(self.url).path).name


@dataclass(frozen=True)
class Source:
    name: str
    files: tuple[Remote, ...]
    unpack: Callable[[Path, Path], Path] | None = None  # (archive, destination root) -> the unpacked folder
    destination: Callable[[Path], Path] = lambda root: root  # the data root -> where the files go
    note: str = ""


def _mirror(url: str, mirror: str | None) -> str:
    """The URL with the mirror's scheme, host and path prefix in front of the original path."""
    if not mirror:
        return url
    base = urllib.parse.urlparse(mirror)
    if base.username is not None or base.password is not None:
        # Never echoed: a password in a URL would land in every progress and error line.
        safe = base._replace(netloc=base.hostname + (f":{base.port}" if base.port else "")).geturl()
        raise HarnessError(f"--mirror {safe}: a user name or password in the URL is not supported (it would be "
                           "printed and not sent); use a mirror that needs none")
    if base.scheme not in ("http", "https") or not base.netloc:
        raise HarnessError(f"--mirror {mirror!r}: expected an http(s) base URL, e.g. https://mirror.example.org/data")
    if base.query:
        raise HarnessError(f"--mirror {mirror!r}: a query string would be dropped (each file's path goes after the "
                           "mirror's); give the base URL without '?...'")
    original = urllib.parse.urlparse(url)
    return urllib.parse.urlunparse(base._replace(path=base.path.rstrip("/") + original.path, query=original.query))


def _verified(path: Path, remote: Remote) -> tuple[bool, str]:
    if remote.algorithm == "sha256-prefix":
        actual = file_hash(path, "sha256")
        return actual.startswith(remote.digest), actual
    actual = file_hash(path, remote.algorithm)
    return actual == remote.digest, actual


class TooLarge(Exception):
    """The server sends (or announces) more than the file can be."""


class TooSlow(Exception):
    """The file did not arrive within its deadline."""


def _transfer(url: str, part: Path, say: Callable[[str], None], max_bytes: int = 2_000_000_000,
              deadline_s: float = float("inf")) -> None:
    """Download url into part, continuing what part already holds; raises on a cut-off transfer, TooLarge past
    max_bytes and TooSlow past the deadline."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "harness-fetch", **({"Range": f"bytes={have}-"} if have else {})}
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part is whole (its checksum decides)
            return
        raise
    with response:
        resumed = have and response.status == 206
        if have and not resumed:
            say(f"  {url}: the server does not resume transfers; starting over")
        expected = response.headers.get("Content-Length")
        total = (int(expected) + (have if resumed else 0)) if expected and expected.isdigit() else None
        if total is not None and total > max_bytes:
            raise TooLarge(f"the server announces {total:,} bytes")
        start = last_said = time.monotonic()
        with open(part, "ab" if resumed else "wb") as out:
            written = out.tell()
            while chunk := response.read1(CHUNK_BYTES):  # what has arrived: a slow server cannot stall a read
                written += len(chunk)
                if written > max_bytes:
                    raise TooLarge(f"the server sent more than {max_bytes:,} bytes")
                out.write(chunk)
                now = time.monotonic()
                if now - start > deadline_s:
                    raise TooSlow(f"{written:,} bytes after {now - start:.0f} s")
                if now - last_said > PROGRESS_S:
                    say(f"  {written:,}" + (f" of {total:,}" if total else "") + f" bytes, {now - start:.0f} s")
                    last_said = now
    size = part.stat().st_size
    if total is not None and size < total:
        raise http.client.IncompleteRead(b"", total - size)


def download(remote: Remote, folder: Path, *, mirror: str | None = None, say: Callable[[str], None] = print,
             what: str = "") -> Path:
    """The verified file in folder: already there, or downloaded (resuming a .part) and checked."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (NotADirectoryError, FileExistsError, PermissionError) as exc:
        raise DataError(f"{folder}: cannot make the folder the file goes in ({exc.strerror}); give --data a "
                        "folder this user can write") from None
    target = folder / remote.name
    if target.is_file() and _verified(target, remote)[0]:
        say(f"  {target}: already there, {remote.algorithm} verified")
        return target
    url = _mirror(remote.url, mirror)
    part = target.with_name(target.name + ".part")
    rerun = f"rerun `harness fetch {what}`" if what else "rerun the command"
    for attempt in range(1, ATTEMPTS + 1):
        have = part.stat().st_size if part.exists() else 0
        say(f"  {url} -> {target}" + (f" (resuming at {have:,} bytes)" if have else ""))
        try:
            _transfer(url, part, say, remote.max_bytes, remote.deadline_s)
            break
        except TooLarge as exc:
            part.unlink(missing_ok=True)
            raise DataError(f"{url}: {exc}, more than {remote.name} can be ({remote.max_bytes:,} bytes at most); "
                            "stopped and deleted what came: the server sends something else, use another --mirror"
                            ) from None
        except TooSlow as exc:
            raise DataError(f"{url}: too slow ({exc}; {remote.name} gets {remote.deadline_s:.0f} s); the part is "
                            f"kept: {rerun} to resume, or use another --mirror") from None
        except urllib.error.HTTPError as exc:
            hint = "the file is not at that address; try --mirror with a copy that has it" if exc.code == 404 \
                else "the server redirects in a loop; use --mirror" if 300 <= exc.code < 400 \
                else "the server refused it; try again later or use --mirror"
            reason = " ".join(str(exc.reason).split())  # urllib's redirect-loop reason spans lines
            raise DataError(f"{url}: HTTP {exc.code} {reason}; {hint}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            if attempt == ATTEMPTS:
                held = part.stat().st_size if part.exists() else 0
                where = f"stopped at {held:,} bytes" if held else "failed"
                then = f"{rerun} to resume from there" if held else f"check the network and {rerun}"
                raise DataError(f"{url}: transfer {where} ({type(exc).__name__}: {reason}); {then}, or give "
                                f"--mirror URL (offline? copy {remote.name} into {folder} by hand)") from None
            say(f"  transfer interrupted ({type(exc).__name__}: {reason}); trying again")
            time.sleep(RETRY_PAUSE_S * (attempt - 1))  # at once after the first cut, then a little later
    ok, actual = _verified(part, remote)
    if not ok:
        part.unlink()
        raise DataError(f"{target.name} from {url} fails its checksum ({remote.algorithm.replace('-prefix', '')} "
                        f"{actual}, expected {remote.digest}{'...' if remote.algorithm.endswith('prefix') else ''}); "
                        f"deleted it: the server sent another file; {rerun} with another --mirror, or download it "
                        "by hand and check it")
    os.replace(part, target)
    return target


def extract(archive: Path, root: Path, folder: str) -> Path:
    """Unpack a tar archive holding `folder` into root, safely (tarfile's 'data' filter), all or nothing."""
    final = root / folder
    with tempfile.TemporaryDirectory(prefix=f".{folder}-extract-", dir=root) as scratch:
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(scratch, filter="data")
        except tarfile.FilterError as exc:
            raise DataError(f"{archive}: refused to extract it: {exc} (an archive member would land outside the "
                            "data root, or is a link or device); delete it and fetch it from a source you trust"
                            ) from None
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{archive} cannot be extracted ({exc}); delete it and fetch it again") from None
        unpacked = Path(scratch) / folder
        if not unpacked.is_dir():
            raise DataError(f"{archive} holds no {folder}/ folder; it is not the archive expected here")
        if not final.exists():  # another process may have finished first
            shutil.move(str(unpacked), final)
    return final


# --- sources ------------------------------------------------------------------------------------------------------

def _idx(name: str) -> Source:
    import torchvision.datasets

    from harness.data import idx

    known = {"mnist": (idx.MNIST, torchvision.datasets.MNIST), "fashion_mnist":
             (idx.FASHION_MNIST, torchvision.datasets.FashionMNIST)}
    source, tv = known[name]
    folder = source.folders[0]  # where the loader looks first
    # The largest of the four files is Fashion-MNIST's training images, 26.4 MB.
    return Source(name, tuple(Remote(tv.mirrors[0] + file, "md5", md5, folder, max_bytes=40_000_000)
                              for file, md5 in tv.resources),
                  note=f"four .gz IDX files in <data root>/{folder}")


def _cifar(name: str) -> Source:
    import torchvision.datasets

    from harness.data import cifar

    source = {"cifar10": cifar.CIFAR10, "cifar100": cifar.CIFAR100}[name]
    tv = getattr(torchvision.datasets, source.torchvision_class)
    return Source(name, (Remote(tv.url, "md5", tv.tgz_md5, max_bytes=200_000_000),),  # 170 MB and 169 MB
                  unpack=lambda archive, root: extract(archive, root, source.folder),
                  note=f"extracted to <data root>/{source.folder}")


def _cub() -> Source:
    from harness.data import folders

    def unpack(archive: Path, root: Path) -> Path:
        folders._extract_cub(root)  # the loader's own unpacking: its md5 check, the 'data' filter, all or nothing
        return root / folders.CUB_FOLDER

    archive = Remote(folders.CUB_ARCHIVE_URL, "md5", folders.CUB_TGZ_MD5, max_bytes=1_300_000_000)  # 1.15 GB
    return Source("cub200", (archive,), unpack=unpack,
                  note=f"extracted to <data root>/{folders.CUB_FOLDER}")


def weights_source(url: str) -> Source:
    """torchvision's ResNet-50 weights into torch.hub's checkpoints folder, where the model looks for them; the
    file name carries the first hex digits of its sha256 (torch.hub's own check)."""
    name = Path(urllib.parse.urlparse(url).path).name
    prefix = name.rsplit("-", 1)[-1].split(".")[0]
    if not prefix or any(c not in "0123456789abcdef" for c in prefix):
        raise HarnessError(f"{url}: no sha256 prefix in the file name to check it against")

    def destination(_: Path) -> Path:
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints"

    return Source("resnet50", (Remote(url, "sha256-prefix", prefix, max_bytes=150_000_000),),  # about 100 MB
                  destination=destination,
                  note="in torch.hub's checkpoints folder ($TORCH_HOME/hub/checkpoints)")


def _resnet50() -> Source:
    import torchvision.models

    return weights_source(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url)


def _cars() -> Source:
    from harness.data import folders

    raise DataError("cars196: no download with a known checksum exists (the Stanford page is offline and "
                    "torchvision dropped its download); get car_ims.tgz and cars_annos.mat from a copy you trust, "
                    f"extract car_ims.tgz into <data root>/{folders.CARS_ALL_IN_ONE_FOLDERS[0]} beside "
                    "cars_annos.mat, and `harness run` will read it")


SOURCES: dict[str, Callable[[], Source]] = {
    "mnist": functools.partial(_idx, "mnist"),
    "fashion_mnist": functools.partial(_idx, "fashion_mnist"),
    "cifar10": functools.partial(_cifar, "cifar10"),
    "cifar100": functools.partial(_cifar, "cifar100"),
    "cub200": _cub,
    "cars196": _cars,
    "resnet50": _resnet50,
}


def fetch(name: str, root: Path, *, mirror: str | None = None, say: Callable[[str], None] = print) -> Path:
    """Download, verify and unpack one dataset (or the ResNet-50 weights); the folder it is in."""
    if name not in SOURCES:
        raise HarnessError(f"unknown dataset '{name}'{suggest(name, SOURCES)}; fetchable: {', '.join(SOURCES)}")
    _mirror("https://example.org/", mirror)  # a bad --mirror fails before anything is created
    try:
        source = SOURCES[name]()
    except DataError as exc:  # a manual step: say where, with this command's data root
        raise DataError(str(exc).replace(DATA_ROOT, str(root))) from None
    destination = source.destination(root)
    got = [download(remote, destination / remote.folder, mirror=mirror, say=say, what=name)
           for remote in source.files]
    place = source.unpack(got[0], destination) if source.unpack is not None else got[0].parent
    say(f"{name}: {len(got)} file(s) verified, {source.note.replace(DATA_ROOT, str(root))} ({place})")
    return place


DATA_ROOT = "<data root>"  # in a source's words; fetch() puts the command's data root in its place


def stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def add_parser(sub: Any) -> None:
    """`harness fetch DATASET`: its arguments (argparse's subparsers, from harness.cli)."""
    fetch_cmd = sub.add_parser("fetch", help=f"download, verify and unpack a dataset of the full profiles or the "
                                             f"resnet50 weights ({', '.join(SOURCES)}); resumable")
    fetch_cmd.add_argument("dataset")
    fetch_cmd.add_argument("--data", type=Path, default=None, help=DATA_ROOT_HELP)
    fetch_cmd.add_argument("--mirror", default=None, metavar="URL",
                           help="a base URL that replaces the source's host (the file's path is kept after it)")
    fetch_cmd.set_defaults(func=command)


def command(args: Any) -> int:
    from harness import data

    fetch(args.dataset, data.data_root(args.data), mirror=args.mirror, say=stderr)
    return 0
