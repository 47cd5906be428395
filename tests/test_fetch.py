"""harness fetch against a local HTTP server on 127.0.0.1: generated archives in the real formats, served at the
real sources' paths (--mirror), including a transfer cut off midway, a wrong checksum and an archive that tries
to write outside the data root."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import fetch
from harness.data import folders
from harness.errors import DataError


class Server:
    """Files by URL path; `cuts[path]` responses to that path stop halfway (the full length announced)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cuts: dict[str, int] = {}
        self.endless: set[str] = set()  # paths answered with no length and bytes that never end
        self.slow: set[str] = set()  # paths answered one byte at a time, 50 ms apart
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = urllib.parse.urlparse(self.path).path
                owner.requests.append((path, self.headers.get("Range")))
                if path.startswith("/loop"):  # redirects to itself, forever
                    self.send_response(302)
                    self.send_header("Location", path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path in owner.endless:
                    self.send_response(200)
                    self.end_headers()
                    try:
                        while True:
                            self.wfile.write(b"\0" * 4096)
                    except OSError:  # the client hung up
                        return
                if path not in owner.files:
                    self.send_error(404)
                    return
                body, start = owner.files[path], 0
                ranged = self.headers.get("Range")
                if ranged:
                    start = int(ranged.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if owner.cuts.get(path, 0) > 0:
                    owner.cuts[path] -= 1
                    self.wfile.write(body[start:start + (len(body) - start) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if path in owner.slow:
                    try:
                        for byte in body[start:]:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(0.05)
                    except OSError:
                        pass
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # serve_forever polls for shutdown every poll_interval (0.5 s by default): each test's teardown waited it.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def serve(self, url: str, body: bytes) -> str:
        """Serve body at the path of a real source's URL."""
        path = urllib.parse.urlparse(url).path
        self.files[path] = body
        return path


@pytest.fixture
def server():
    running = Server()
    running.thread.start()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(fetch, "RETRY_PAUSE_S", 0.0)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def idx_gz(array: np.ndarray) -> bytes:
    """An IDX file (uint8), gzipped, as MNIST distributes them."""
    header = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def cifar_archive(folder: str = "cifar-10-batches-py", extra: dict[str, bytes] | None = None) -> bytes:
    rng = np.random.default_rng(0)

    def batch(n: int) -> bytes:
        return pickle.dumps({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                             b"labels": [int(v) for v in rng.integers(0, 10, n)]}, protocol=2)

    members = {f"{folder}/data_batch_{i}": batch(4) for i in range(1, 6)}
    members |= {f"{folder}/test_batch": batch(4), f"{folder}/batches.meta": pickle.dumps({b"label_names": []})}
    return tar_gz({**members, **(extra or {})})


def with_checksums(monkeypatch, name: str, bodies: list[bytes]) -> fetch.Source:
    """The real source of `name` (its URLs and folders), with the generated files' md5s."""
    source = fetch.SOURCES[name]()
    changed = dataclasses.replace(source, files=tuple(dataclasses.replace(r, digest=md5(b))
                                                      for r, b in zip(source.files, bodies)))
    monkeypatch.setitem(fetch.SOURCES, name, lambda: changed)
    return changed


def test_mnist_files_land_where_the_loader_looks(server, monkeypatch, tmp_path: Path, run_cli):
    rng = np.random.default_rng(0)
    bodies = [idx_gz(rng.integers(0, 256, (6, 28, 28))), idx_gz(rng.integers(0, 10, (6,))),
              idx_gz(rng.integers(0, 256, (3, 28, 28))), idx_gz(rng.integers(0, 10, (3,)))]
    source = with_checksums(monkeypatch, "mnist", bodies)
    for remote, body in zip(source.files, bodies):
        assert remote.url.startswith("https://ossci-datasets.s3.amazonaws.com/mnist/")  # torchvision's source
        server.serve(remote.url, body)
    code, _, err = run_cli("fetch", "mnist", "--data", tmp_path, "--mirror", server.url)
    assert code == 0, err
    folder = tmp_path / "MNIST" / "raw"
    for remote, body in zip(source.files, bodies):
        assert (folder / remote.name).read_bytes() == body
    assert not list(folder.glob("*.part"))
    assert "mnist: 4 file(s) verified" in err
    # A second fetch finds them verified and downloads nothing.
    served = len(server.requests)
    assert run_cli("fetch", "mnist", "--data", tmp_path, "--mirror", server.url)[0] == 0
    assert len(server.requests) == served


def test_a_cut_off_transfer_resumes_with_a_range_request(server, monkeypatch, tmp_path: Path, run_cli):
    body = cifar_archive()
    source = with_checksums(monkeypatch, "cifar10", [body])
    path = server.serve(source.files[0].url, body)
    server.cuts[path] = 1
    code, _, err = run_cli("fetch", "cifar10", "--data", tmp_path, "--mirror", server.url)
    assert code == 0, err
    assert server.requests == [(path, None), (path, f"bytes={len(body) // 2}-")]
    assert "transfer interrupted" in err and f"resuming at {len(body) // 2:,} bytes" in err
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == body
    batches = tmp_path / "cifar-10-batches-py"
    assert sorted(p.name for p in batches.iterdir()) == sorted(
        [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch folder left


def test_a_transfer_that_keeps_failing_stops_with_one_line_and_resumes_next_time(server, monkeypatch,
                                                                               tmp_path: Path, run_cli):
    body = cifar_archive()
    source = with_checksums(monkeypatch, "cifar10", [body])
    path = server.serve(source.files[0].url, body)
    server.cuts[path] = fetch.ATTEMPTS
    code, out, err = run_cli("fetch", "cifar10", "--data", tmp_path, "--mirror", server.url)
    assert code == 2 and out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: {server.url}{path}: transfer stopped at ") and \
        "rerun `harness fetch cifar10` to resume from there" in last
    part = tmp_path / "cifar-10-python.tar.gz.part"
    held = part.stat().st_size
    assert 0 < held < len(body) and not (tmp_path / "cifar-10-python.tar.gz").exists()
    code, _, err = run_cli("fetch", "cifar10", "--data", tmp_path, "--mirror", server.url)
    assert code == 0, err
    assert server.requests[-1] == (path, f"bytes={held}-")
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == body and not part.exists()


def test_a_wrong_checksum_is_one_line_and_leaves_no_file(server, monkeypatch, tmp_path: Path, run_cli):
    body = cifar_archive()
    source = with_checksums(monkeypatch, "cifar10", [body])
    server.serve(source.files[0].url, body[:-10] + b"0123456789")  # not the file the checksum names
    code, out, err = run_cli("fetch", "cifar10", "--data", tmp_path, "--mirror", server.url)
    assert code == 2 and out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: cifar-10-python.tar.gz from {server.url}") and \
        "fails its checksum (md5 " in last and f"expected {md5(body)}); deleted it" in last
    assert list(tmp_path.iterdir()) == []  # neither the file, nor a .part, nor an extracted folder


def test_an_archive_that_writes_outside_the_data_root_is_refused(server, monkeypatch, tmp_path: Path, run_cli):
    root = tmp_path / "data"
    body = cifar_archive(extra={"../evil": b"outside"})
    source = with_checksums(monkeypatch, "cifar10", [body])
    server.serve(source.files[0].url, body)
    code, _, err = run_cli("fetch", "cifar10", "--data", root, "--mirror", server.url)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert "refused to extract it" in last and "../evil" in last
    assert not (tmp_path / "evil").exists() and not (root.parent / "evil").exists()
    assert not (root / "cifar-10-batches-py").exists()
    assert [p.name for p in root.iterdir()] == ["cifar-10-python.tar.gz"]  # nothing half-extracted


def cub_archive(images_per_class: int = 2) -> bytes:
    members, lines, labels = {}, [], []
    for image_id in range(1, 200 * images_per_class + 1):
        class_id = (image_id - 1) // images_per_class + 1
        rel = f"{class_id:03d}.Bird_{class_id}/Bird_{class_id}_{image_id}.jpg"
        buffer = io.BytesIO()
        Image.new("RGB", (12, 9), (class_id, image_id % 256, 7)).save(buffer, format="JPEG")
        members[f"CUB_200_2011/images/{rel}"] = buffer.getvalue()
        lines.append(f"{image_id} {rel}")
        labels.append(f"{image_id} {class_id}")
    members["CUB_200_2011/images.txt"] = ("\n".join(lines) + "\n").encode()
    members["CUB_200_2011/image_class_labels.txt"] = ("\n".join(labels) + "\n").encode()
    return tar_gz(members)


def test_cub_is_unpacked_by_the_loaders_own_check_and_then_loads(server, monkeypatch, tmp_path: Path, run_cli):
    body = cub_archive()
    monkeypatch.setattr(folders, "CUB_TGZ_MD5", md5(body))  # the generated archive stands for the real one
    source = fetch.SOURCES["cub200"]()
    assert source.files[0].url == folders.CUB_ARCHIVE_URL and source.files[0].digest == md5(body)
    # A mirror with a path of its own: the source's path goes after it.
    server.files["/copies" + urllib.parse.urlparse(folders.CUB_ARCHIVE_URL).path] = body
    code, _, err = run_cli("fetch", "cub200", "--data", tmp_path, "--mirror", server.url + "/copies/")
    assert code == 0, err
    assert server.requests[0][0] == "/copies" + urllib.parse.urlparse(folders.CUB_ARCHIVE_URL).path
    dataset = folders.load_cub200(tmp_path)
    assert len(dataset.train) == 200 and len(dataset.test) == 200 and dataset.num_classes == 200


def test_resnet50_weights_are_checked_by_the_hash_in_their_name(server, monkeypatch, tmp_path: Path):
    import torch
    import torchvision.models

    assert fetch.SOURCES["resnet50"]().files[0].url == torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url
    body = b"weights" * 1000
    url = f"https://download.pytorch.org/models/resnet50-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    monkeypatch.setitem(fetch.SOURCES, "resnet50", lambda: fetch.weights_source(url))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    server.serve(url, body)
    place = fetch.fetch("resnet50", tmp_path / "data", mirror=server.url, say=lambda line: None)
    assert place == tmp_path / "hub" / "checkpoints"
    assert (place / Path(url).name).read_bytes() == body
    server.serve(url, body + b"x")
    (place / Path(url).name).unlink()
    with pytest.raises(DataError, match=r"fails its checksum \(sha256 [0-9a-f]{64}, expected [0-9a-f]{8}\.\.\.\)"):
        fetch.fetch("resnet50", tmp_path / "data", mirror=server.url, say=lambda line: None)
    assert list(place.iterdir()) == []


@pytest.mark.parametrize("args, expected", [
    (["fetch", "mnst"], "error: unknown dataset 'mnst' (did you mean 'mnist'?); fetchable: mnist,"),
    (["fetch", "cars196"], "error: cars196: no download with a known checksum exists"),
    (["fetch", "mnist", "--mirror", "ftp://x"], "error: --mirror 'ftp://x': expected an http(s) base URL"),
])
def test_what_cannot_be_fetched_is_one_line(run_cli, tmp_path: Path, args, expected):
    code, out, err = run_cli(*args, "--data", tmp_path / "d")
    assert code == 2 and out == "" and err.startswith(expected) and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


def test_a_missing_file_on_the_mirror_says_so(server, tmp_path: Path, run_cli):
    code, _, err = run_cli("fetch", "cifar100", "--data", tmp_path, "--mirror", server.url)
    assert code == 2 and "HTTP 404" in err and "try --mirror with a copy that has it" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("mirror, words", [
    ("http://alice:s3cret@mirror.example.org/data", "--mirror http://mirror.example.org/data: a user name or password"),
    ("https://token@mirror.example.org", "a user name or password in the URL is not supported"),
    ("https://mirror.example.org/data?key=1", "a query string would be dropped"),
])
def test_a_mirror_with_credentials_or_a_query_is_one_line_that_never_prints_the_password(mirror, words, tmp_path,
                                                                                       run_cli):
    """Issue 30, item 8: the password was printed in 8 lines and taken as part of the host name."""
    code, out, err = run_cli("fetch", "mnist", "--data", tmp_path, "--mirror", mirror)
    assert code == 2 and out == "" and err.count("\n") == 1 and words in err
    assert "s3cret" not in err and "token" not in err and not list(tmp_path.iterdir())


def small_source(monkeypatch, body: bytes, max_bytes: int) -> fetch.Remote:
    remote = fetch.Remote("https://example.org/files/one.bin", "md5", md5(body), "one", max_bytes=max_bytes)
    monkeypatch.setitem(fetch.SOURCES, "mnist", lambda: fetch.Source("mnist", (remote,)))
    return remote


def test_a_file_larger_than_it_can_be_is_refused_announced_or_not(server, monkeypatch, tmp_path, run_cli):
    """Issue 30, item 4: an endless body filled a .part file far past the archive's size."""
    remote = small_source(monkeypatch, b"x" * 5000, max_bytes=4096)
    server.serve(remote.url, b"x" * 5000)  # announced: 5,000 bytes
    code, _, err = run_cli("fetch", "mnist", "--data", tmp_path, "--mirror", server.url)
    assert code == 2 and "the server announces 5,000 bytes, more than one.bin can be (4,096 bytes at most)" in err
    server.endless.add(urllib.parse.urlparse(remote.url).path)  # no length, and it never ends
    code, _, err = run_cli("fetch", "mnist", "--data", tmp_path, "--mirror", server.url)
    assert code == 2 and "the server sent more than 4,096 bytes" in err.strip().splitlines()[-1]
    assert not list((tmp_path / "one").glob("*"))  # nothing kept of it


def test_a_server_too_slow_for_the_files_deadline_stops_with_the_part_kept(server, monkeypatch, tmp_path, run_cli):
    """Issue 30, item 5: a byte every 20 s held the command past 400 s, saying nothing."""
    body = b"y" * 200
    remote = small_source(monkeypatch, body, max_bytes=1000)
    monkeypatch.setattr(fetch, "MIN_DEADLINE_S", 0.5)
    monkeypatch.setattr(fetch, "MIN_BYTES_PER_S", 10**9)
    monkeypatch.setattr(fetch, "PROGRESS_S", 0.2)
    server.serve(remote.url, body)
    server.slow.add(urllib.parse.urlparse(remote.url).path)
    code, _, err = run_cli("fetch", "mnist", "--data", tmp_path, "--mirror", server.url)
    last = err.strip().splitlines()[-1]
    assert code == 2 and "too slow (" in last and "one.bin gets 0 s); the part is kept" in last, err
    assert any(line.strip().endswith(" s") and "bytes" in line for line in err.splitlines()[:-1])  # progress said
    assert (tmp_path / "one" / "one.bin.part").exists()


def test_a_redirect_loop_is_one_line(server, monkeypatch, tmp_path, run_cli):
    small_source(monkeypatch, b"z", max_bytes=10)
    code, _, err = run_cli("fetch", "mnist", "--data", tmp_path, "--mirror", server.url + "/loop")
    last = err.strip().splitlines()[-1]
    assert code == 2 and "HTTP 302" in last and "redirects in a loop; use --mirror" in last
    assert sum(line.startswith("error:") for line in err.splitlines()) == 1 and "\n" not in last


def test_one_address_for_cub_and_the_data_root_named_in_manual_steps(run_cli, tmp_path):
    """The CUB record's page (the loader's message, the README) and its archive (fetch) come from one constant,
    and a source that needs a manual step says where with this command's data root, not a placeholder."""
    assert folders.CUB_ARCHIVE_URL.startswith(folders.CUB_URL + "/files/")
    assert folders.CUB_URL in (Path(__file__).resolve().parent.parent / "README.md").read_text()
    code, _, err = run_cli("fetch", "cars196", "--data", tmp_path / "root")
    assert code != 0 and "<data root>" not in err and f"{tmp_path / 'root'}/" in err
