"""harness demo without a browser: the demo run and its weights, image checks, the engine, the server over HTTP."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness import cli, spec, store
from harness.demo import images, runs
from harness.demo.engine import Engine, vote
from harness.errors import ConfigError, HarnessError
from harness.files import file_hash
from tests.conftest import REPO, DemoServer, corrected_only

DEMO_CELL = {"loss": "contrastive", "protocol": "corrected"}


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _demo_study(experiments: Path) -> None:
    """loss_epochs reduced to the contrastive loss, its smoke profile naming that run as the demo run."""
    path = experiments / "loss_epochs.yaml"
    doc = corrected_only(yaml.safe_load(path.read_text()), ("contrastive",))
    doc["profiles"]["smoke"]["demo"] = {"where": DEMO_CELL, "seed": 0}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """(experiments, results) after `harness run` of the small demo study (digits, seconds)."""
    root = tmp_path_factory.mktemp("demo")
    experiments, results = root / "experiments", root / "results"
    shutil.copytree(REPO / "experiments", experiments)
    _demo_study(experiments)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spec, "EXPERIMENTS_DIR", experiments)
        assert cli.main(["run", "loss_epochs", "--profile", "smoke", "--results", str(results), "--no-progress"]) == 0
    return experiments, results


@pytest.fixture
def study_dir(trained, monkeypatch: pytest.MonkeyPatch):
    experiments, results = trained
    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", experiments)
    return results


# -- the demo run keeps its weights --------------------------------------------------------------------------------

def test_demo_entry_keeps_weights_of_one_run_without_changing_any_run_id(tmp_path: Path, experiments: Path):
    _demo_study(experiments)
    with_demo = spec.load("loss_epochs", "smoke", experiments, components=False)
    doc = yaml.safe_load((experiments / "loss_epochs.yaml").read_text())
    del doc["profiles"]["smoke"]["demo"]
    (experiments / "loss_epochs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    without = spec.load("loss_epochs", "smoke", experiments, components=False)
    assert [r.run_id for r in with_demo.runs] == [r.run_id for r in without.runs]
    kept = [r for r in with_demo.runs if r.execution.save_weights]
    assert [r.axes for r in kept] == [DEMO_CELL] and kept[0].run_id == with_demo.demo_run
    assert without.demo_run is None and not any(r.execution.save_weights for r in without.runs)


def test_committed_quick_profiles_name_their_demo_runs_with_weights():
    names = runs.demo_studies("quick")
    assert {"loss_epochs", "one_shot", "arcface", "nk_sampling"} <= set(names)  # every study with an image embedding
    for name in names:
        study = spec.load(name, "quick", components=False)
        chosen = runs.choose(name, "quick", store.RESULTS_DIR)
        assert chosen.run.run_id == study.demo_run and chosen.record.intact()
        weights = runs.check_weights(chosen)  # the record's own, or a rebuild of exactly this record
        assert weights.path == store.weights_path(store.RESULTS_DIR, name, "quick", study.demo_run)
        assert weights.recorded or "rebuilt by `harness demo --rebuild`" in weights.provenance


def test_demo_entry_naming_no_single_cell_is_a_config_error(experiments: Path):
    _demo_study(experiments)
    path = experiments / "loss_epochs.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["profiles"]["smoke"]["demo"] = {"where": {"loss": "contrastive"}, "seed": 0}  # protocol left out
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError, match=r"profiles.smoke.demo: 0 runs are the cell .*name exactly one"):
        spec.load("loss_epochs", "smoke", experiments, components=False)


def test_run_saves_the_demo_runs_weights_with_their_sha256_in_the_sealed_record(study_dir: Path):
    study = spec.load("loss_epochs", "smoke", components=False)
    scan = store.scan(study_dir, "loss_epochs", "smoke")
    assert len(scan.ok) == len(study.runs) == 3
    for run_id, record in scan.ok.items():
        weights = store.weights_path(study_dir, "loss_epochs", "smoke", run_id)
        if run_id == study.demo_run:
            assert record.weights.file == weights.name and file_hash(weights) == record.weights.sha256
            assert record.intact()
            # The digest covers the weights entry: a record pointing at other weights is no longer intact.
            edited = record.model_copy(update={"weights": record.weights.model_copy(update={"sha256": "0" * 64})})
            assert not edited.intact()
        else:
            assert record.weights is None and not weights.exists()


def test_a_record_without_weights_is_written_and_sealed_as_before(tmp_path: Path):
    """Records without weights (every record written before this option) keep their digests."""
    from tests.conftest import fake_record

    path = store.write(tmp_path, fake_record())
    assert json.loads(path.read_text())["weights"] is None and store.read(path).intact()
    committed = [p for p in sorted((REPO / "results" / "arcface" / "quick").glob("*.json"))
                 if "weights" not in json.loads(p.read_text())]
    assert committed and all(store.read(p).intact() for p in committed)


# -- choosing the run --------------------------------------------------------------------------------------------

def test_choose_refuses_unknown_runs_baselines_and_studies_without_a_demo_run(study_dir: Path):
    with pytest.raises(HarnessError, match=r"--run 0123456789abcdef: not a run of loss_epochs/smoke"):
        runs.choose("loss_epochs", "smoke", study_dir, "0123456789abcdef")
    study = spec.load("loss_epochs", "smoke", components=False)
    baseline = next(r for r in study.runs if "baseline" in r.axes)
    with pytest.raises(HarnessError, match="is a baseline .* no weights to serve"):
        runs.choose("loss_epochs", "smoke", study_dir, baseline.run_id)
    with pytest.raises(HarnessError, match=r"one_shot/smoke names no demo run .*--run RUN_ID"):
        runs.choose("one_shot", "smoke", study_dir)
    with pytest.raises(HarnessError, match="is not recorded in .*harness run one_shot"):
        runs.choose("one_shot", "smoke", study_dir, spec.load("one_shot", "smoke", components=False).runs[0].run_id)


def test_missing_or_altered_weights_name_the_rebuild_command(study_dir: Path, tmp_path: Path):
    results = tmp_path / "results"
    shutil.copytree(study_dir, results)
    chosen = runs.choose("loss_epochs", "smoke", results)
    chosen.weights.write_bytes(chosen.weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(HarnessError, match=r"sha256 .* is not the .* its record names .*--rebuild"):
        runs.check_weights(chosen)
    chosen.weights.unlink()
    with pytest.raises(HarnessError) as caught:
        runs.check_weights(chosen)
    message = str(caught.value)
    assert "\n" not in message and f"harness demo loss_epochs --profile smoke --run {chosen.run.run_id} " \
        f"--results {results} --rebuild" in message
    # The named command rebuilds them: the same bits as the recorded file (training is deterministic here).
    code = cli.main(["demo", "loss_epochs", "--profile", "smoke", "--results", str(results), "--rebuild"])
    assert code == 0 and file_hash(chosen.weights) == chosen.record.weights.sha256
    assert runs.check_weights(runs.choose("loss_epochs", "smoke", results)).recorded


def test_rebuild_of_a_record_without_weights_says_how_it_compares(trained, tmp_path: Path, monkeypatch):
    """Records written before a study kept weights: the rebuild leaves the record as it is and says, in the file,
    that its metrics equal the record's (or by how much they differ)."""
    experiments, _ = trained
    plain = tmp_path / "experiments"
    shutil.copytree(experiments, plain)
    doc = yaml.safe_load((plain / "loss_epochs.yaml").read_text())
    del doc["profiles"]["smoke"]["demo"]
    (plain / "loss_epochs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", plain)
    results = tmp_path / "results"
    assert cli.main(["run", "loss_epochs", "--profile", "smoke", "--results", str(results), "--no-progress"]) == 0
    run_id = next(r.run_id for r in spec.load("loss_epochs", "smoke", components=False).runs if r.axes == DEMO_CELL)
    with pytest.raises(HarnessError, match="names no demo run"):
        runs.choose("loss_epochs", "smoke", results)
    chosen = runs.choose("loss_epochs", "smoke", results, run_id)
    before = store.record_path(results, "loss_epochs", "smoke", run_id).read_bytes()
    with pytest.raises(HarnessError, match="its record names no saved weights.*--rebuild"):
        runs.check_weights(chosen)
    weights = runs.rebuild(chosen, say=lambda line: None)
    assert not weights.recorded and "every metric equal to the record's" in weights.provenance
    assert store.record_path(results, "loss_epochs", "smoke", run_id).read_bytes() == before
    other = runs.choose("loss_epochs", "smoke", results, run_id)
    forged = other.record.model_copy(update={"digest": "f" * 64})
    with pytest.raises(HarnessError, match="not a rebuild of this run's record"):
        runs.check_weights(runs.Chosen(other.study, other.run, forged, other.weights, results))


# -- images --------------------------------------------------------------------------------------------------------

SHAPE = (1, 28, 28)


def test_a_drawing_at_the_datasets_resolution_is_used_as_drawn():
    drawing = np.zeros((28, 28, 4), dtype=np.uint8)
    drawing[..., 3] = 255
    drawing[5:20, 12:15, :3] = 255
    pixels, notices = images.decode(_png(drawing), SHAPE, "canvas")
    assert notices == [] and pixels.shape == SHAPE and pixels.dtype == np.float32
    assert pixels[0, 10, 13] == 1.0 and pixels[0, 0, 0] == 0.0


def test_bad_images_are_one_clear_message_each():
    with pytest.raises(images.InputError, match="canvas is empty"):
        images.decode(_png(np.zeros((28, 28), dtype=np.uint8)), SHAPE, "canvas")
    with pytest.raises(images.InputError, match="blank"):
        images.decode(_png(np.full((40, 30), 200, dtype=np.uint8)), SHAPE, "file")
    with pytest.raises(images.InputError, match=r"not an image the demo can read \(PNG, JPEG"):
        images.decode(b"%PDF-1.4 not an image at all", SHAPE)
    with pytest.raises(images.InputError, match=r"up to 8 MB"):
        images.decode(b"\0" * (images.MAX_UPLOAD_BYTES + 1), SHAPE)
    with pytest.raises(images.InputError, match=r"9000x9000 pixels; the demo takes images up to 40 megapixels"):
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("1", (9000, 9000)).save(buffer, format="PNG")  # 81 megapixels in a few KB
        images.decode(buffer.getvalue(), SHAPE)
    # Issue 30, item 1: 150 bytes of PNG declaring 46000 x 1 made the server pad it to a 46000 x 46000 canvas (2 GB).
    from PIL import Image

    strip = io.BytesIO()
    Image.new("L", (46000, 1), 255).save(strip, format="PNG")
    assert len(strip.getvalue()) < 1000
    with pytest.raises(images.InputError, match=r"46000x1 pixels, more than 20 times longer than it is wide"):
        images.decode(strip.getvalue(), SHAPE)
    with pytest.raises(images.InputError, match="no image received"):
        images.from_base64("")
    with pytest.raises(images.InputError, match="base64"):
        images.from_base64("data:image/png;base64,***")
    assert images.from_base64("data:image/png;base64," + base64.b64encode(b"abc").decode()) == b"abc"


def test_every_intermediate_of_a_large_odd_shaped_image_stays_within_the_pixel_budget(monkeypatch):
    from PIL import Image

    made = []
    real_new = Image.new
    monkeypatch.setattr(Image, "new", lambda mode, size, *a: made.append(size) or real_new(mode, size, *a))
    wide = np.zeros((1000, 19000), dtype=np.uint8)  # 19 MP, allowed; padded to a square it would be 361 MP
    wide[400:600, 1000:18000] = 255
    pixels, notices = images.decode(_png(wide), SHAPE)
    assert pixels.shape == SHAPE and any("resized from 19000x1000" in n for n in notices)
    assert made and all(w * h <= images.MAX_PIXELS for w, h in made), made
    assert images.canvas_size(19000, 1000, 28, 28) == (19000, 19000)


def test_colour_odd_sized_and_dark_on_light_images_are_converted_and_said_so():
    photo = np.full((90, 60, 3), 255, dtype=np.uint8)  # a red mark on white paper, portrait
    photo[30:60, 20:40] = (200, 30, 30)
    pixels, notices = images.decode(_png(photo), SHAPE)
    assert pixels.shape == SHAPE
    assert any("colour image converted to grey-scale" in n for n in notices)
    assert any("resized from 60x90 to the dataset's 28x28 (padded" in n for n in notices)
    assert any("inverted to light on dark" in n for n in notices)
    assert pixels[0, 14, 14] > 0.5 and pixels[0, 1, 1] < 0.05  # the mark is light, the paper dark
    colour, _ = images.decode(_png(photo), (3, 28, 28))  # a colour model keeps the colours
    assert colour.shape == (3, 28, 28) and colour[0, 14, 14] != colour[1, 14, 14]


def test_the_vote_is_the_evaluations_knn_rule():
    from harness.evaluate import evaluate

    rng = np.random.default_rng(0)
    for _ in range(40):
        labels = rng.integers(0, 4, 3)
        if len(set(labels)) == 1:  # the evaluation refuses a one-class reference
            continue
        # One query at the origin and three references at increasing distances: knn_accuracy is 1 for the label
        # the evaluation's vote gives, and 0 for any other.
        reference = np.array([[1.0, 0], [2.0, 0], [3.0, 0]])
        for candidate in range(4):
            scored = evaluate(np.zeros((1, 2)), np.array([candidate]), reference, labels, metrics=["knn_accuracy"],
                              knn_k=3)["knn_accuracy"]
            assert scored == float(vote(labels) == candidate)


# -- the engine ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def engine(trained) -> Engine:
    experiments, results = trained
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spec, "EXPERIMENTS_DIR", experiments)
        return Engine(runs.choose("loss_epochs", "smoke", results))


def test_engine_reproduces_the_recorded_knn_accuracy(engine: Engine):
    from harness import data as datasets

    record = engine.chosen.record
    parts = datasets.run_splits(datasets.load("digits"), engine.chosen.run.config.data)
    test = engine._embed_split(parts.test)
    _, found = engine.index.search(engine._prepared(test), engine.knn_k)
    predicted = [vote(engine.reference.labels[row]) for row in found]
    accuracy = float(np.mean(np.array(predicted) == parts.test.labels.numpy()))
    assert accuracy == pytest.approx(record.last_metrics()["knn_accuracy"], abs=1e-12)
    assert engine.reference.labels.shape == (len(parts.train),)  # the kNN reference: the training split


def test_engine_finds_a_reference_image_itself_at_distance_zero(engine: Engine):
    index = 7
    pixels = (engine.reference.split.images[index].numpy() * engine.std + engine.mean) / engine.pixel_max
    # Through the PNG a browser would send: 8-bit pixels, so the nearest image is the same one, at ~0 distance.
    answer = engine.neighbours(_png(np.round(pixels[0] * 255).astype(np.uint8)), "file")
    first = answer["neighbours"][0]
    assert first["index"] == index and first["distance"] < 1e-2 and first["votes"]
    assert answer["prediction"]["label"] == vote(np.array([n["label"] for n in answer["neighbours"][:3]]))
    assert len(answer["neighbours"]) == 8 and answer["input"].startswith("data:image/png;base64,")


def test_compare_uses_a_threshold_chosen_on_validation_pairs(engine: Engine):
    from harness import data as datasets
    from harness.evaluate import evaluate

    parts = datasets.run_splits(datasets.load("digits"), engine.chosen.run.config.data)
    expected = evaluate(engine._embed_split(parts.test), parts.test.labels.numpy(), metrics=["verification"],
                        distance=engine.distance)["verification_threshold"]
    assert engine.threshold == expected and "computed by the demo" in engine.threshold_source
    image = lambda i: _png(np.round((engine.reference.split.images[i].numpy()[0] * engine.std[0] + engine.mean[0])
                                    / engine.pixel_max * 255).clip(0, 255).astype(np.uint8))
    same = engine.compare(image(3), image(3))
    assert same["same"] and same["distance"] < 1e-6
    with pytest.raises(images.InputError, match="second image: the image is blank"):
        engine.compare(image(3), _png(np.zeros((8, 8), dtype=np.uint8)))


def test_one_shot_uses_its_recorded_threshold():
    chosen = runs.choose("one_shot", "quick", store.RESULTS_DIR)
    recorded = chosen.record.last_metrics()["verification_threshold"]
    engine = Engine(chosen)
    assert engine.threshold == recorded and engine.threshold_source.startswith("recorded: chosen on validation")


# -- the server, over HTTP --------------------------------------------------------------------------------------------

@pytest.fixture
def server(trained):
    experiments, results = trained
    served = DemoServer("loss_epochs", "--profile", "smoke", "--results", str(results),
                    env={"HARNESS_EXPERIMENTS": str(experiments)})
    yield served
    served.stop()


def _data_url(content: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(content).decode()


def test_server_answers_and_keeps_serving_after_bad_input(server: DemoServer):
    status, page = server.get("/")
    assert status == 200 and b'id="canvas"' in page
    assert b"http" not in page  # no outside assets: every link is relative to this server
    for asset in ("demo.js", "demo.css"):
        status, content = server.get(f"/static/{asset}")
        assert status == 200 and b"https://" not in content and b"http://" not in content
    info = json.loads(server.get("/api/info")[1])
    assert info["study"] == "loss_epochs" and info["profile"] == "smoke" and info["shape"] == [1, 8, 8]
    assert info["metrics"]["knn_accuracy"] > 0 and info["default_run"] and info["weights_sha256"]

    bad = [({"image": _data_url(b"GIF89a but not really")}, "not an image the demo can read"),
           ({"image": _data_url(_png(np.zeros((8, 8), dtype=np.uint8))), "source": "canvas"}, "canvas is empty"),
           ({"image": "data:image/png;base64,!!"}, "base64"),
           ({}, "no image received"),
           ([1, 2], "not a JSON object")]
    for body, message in bad:
        status, answer = server.post("/api/neighbours", body)
        assert status == 422 and message in answer.get("error", ""), (body, status, answer)
    status, answer = server.post("/api/compare", {"first": {"image": ""}})
    assert status == 422 and "no first image received" in answer["error"]

    digit = np.zeros((8, 8), dtype=np.uint8)
    digit[1:7, 3:5] = 255
    status, answer = server.post("/api/neighbours", {"image": _data_url(_png(digit)), "source": "canvas"})
    assert status == 200 and len(answer["neighbours"]) == 8 and answer["prediction"]["name"] in "0123456789"
    status, answer = server.post("/api/compare", {"first": {"image": _data_url(_png(digit))},
                                                  "second": {"image": _data_url(_png(digit))}})
    assert status == 200 and answer["same"] is True and answer["distance"] < 1e-6
    assert server.process.poll() is None

    # Issue 30, items 6 and 7: only the demo's own page, at its own address, with JSON; a body without a length is
    # capped as it streams.
    import http.client

    port = int(server.url.rsplit(":", 1)[1])

    def raw(headers: dict, body=b"{}", path="/api/neighbours", chunked=False) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.putrequest("POST", path, skip_host="Host" in headers)
        for key, value in headers.items():
            connection.putheader(key, value)
        if chunked:
            connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        if chunked:
            try:
                for piece in body:
                    connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                connection.send(b"0\r\n\r\n")
            except OSError:  # the server answered and closed before the body ended
                pass
        else:
            connection.send(body)
        response = connection.getresponse()
        return response.status, response.read().decode()

    json_type = {"Content-Type": "application/json"}
    start_mb = server.rss_mb()
    status, text = raw({**json_type, "Host": "evil.example:80", "Content-Length": "2"})
    assert status == 403 and "is not this demo's address" in text
    status, text = raw({**json_type, "Origin": "http://evil.example", "Content-Length": "2"})
    assert status == 403 and "requests from http://evil.example are not answered" in text
    status, text = raw({"Content-Type": "text/plain", "Content-Length": "2"})
    assert status == 415 and "send JSON" in text
    deep = b"[" * 100_000 + b"]" * 100_000
    status, text = raw({**json_type, "Content-Length": str(len(deep))}, body=deep)
    assert status == 422 and "nests too deep" in text
    megabyte = b"x" * 1_000_000
    status, text = raw(json_type, body=(megabyte for _ in range(40)), chunked=True)
    assert status == 422 and "the upload is larger than" in text
    # 200 hostile requests: strips of 150 bytes (each was 2 GB), oversized streams, foreign pages, wrong types.
    from PIL import Image

    strip = io.BytesIO()
    Image.new("L", (46000, 1), 255).save(strip, format="PNG")
    strip_body = json.dumps({"image": _data_url(strip.getvalue())}).encode()
    for i in range(200):
        if i % 40 == 0:
            status, _ = raw(json_type, body=(megabyte for _ in range(25)), chunked=True)
        elif i % 4 == 0:
            status, _ = raw({**json_type, "Origin": "http://evil.example", "Content-Length": "2"})
        elif i % 4 == 1:
            status, _ = raw({"Content-Type": "text/plain", "Content-Length": "2"})
        else:
            status, _ = raw({**json_type, "Content-Length": str(len(strip_body))}, body=strip_body)
        assert status in (403, 415, 422), (i, status)
    assert server.process.poll() is None and server.rss_mb() - start_mb < 200, (start_mb, server.rss_mb())


def test_demo_command_errors_are_one_line(study_dir: Path, tmp_path: Path):
    def demo(*args: str) -> tuple[int, str]:
        result = subprocess.run([sys.executable, "-m", "harness", "demo", *args], cwd=REPO, capture_output=True,
                                text=True, timeout=120, env={**os.environ,
                                                             "HARNESS_EXPERIMENTS": str(spec.EXPERIMENTS_DIR)})
        return result.returncode, result.stderr

    code, err = demo("loss_epochs", "--profile", "smoke", "--results", str(study_dir), "--run", "nope")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: --run nope: not a run of loss_epochs/smoke")
    code, err = demo("loss_epochs", "--profile", "smoke", "--results", str(tmp_path), "--port", "0")
    assert code == 2 and err.count("\n") == 1 and "is not recorded in" in err
    code, err = demo("loss_epochs", "--port", "70000")
    assert code == 2 and "--port 70000: expected 0 (a free port) to 65535" in err
    code, err = demo("no_such_study")
    assert code == 2 and err.count("\n") == 1 and "no_such_study" in err


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_checks_its_variables_before_the_shell():
    def make(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["make", "-n", "demo", *args], cwd=REPO, capture_output=True, text=True, timeout=60)

    done = make("STUDY=one_shot", "RUN=0acb5e5635f9ae9d", "PORT=8001")
    assert done.returncode == 0 and "-m harness demo one_shot --profile quick --port 8001 --run 0acb5e5635f9ae9d" \
        in done.stdout
    for bad, message in [("STUDY=x; rm -rf y", "STUDY="), ("RUN=abc;ls", "RUN='abc;ls': a run_id"),
                         ("PORT=80 81", "PORT='80 81': a port number")]:
        done = make(bad)
        assert done.returncode != 0 and message in done.stderr and "harness demo" not in done.stdout, bad
