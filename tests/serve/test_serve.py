"""`dlapps serve`: every route and error through FastAPI's test client, answering exactly as the app classes do."""

import base64
import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'dlapps[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

import dlapps  # noqa: E402
from dlapps.cli import main as cli  # noqa: E402
from dlapps.serve import create_app, parse_models  # noqa: E402
from tests.helpers import EXAMPLES, FACES, write_clip  # noqa: E402


@pytest.fixture(scope="module")
def client(registry):
    return TestClient(create_app(registry))


def upload(path, field="image"):
    return {field: (path.name, path.read_bytes())}


def b64(path):
    return base64.b64encode(path.read_bytes()).decode()


# === Models, page, health ===


def test_health_models_page_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok", "models": ["cat", "detect", "faces", "starry_night"]}
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert models["detect"]["classes"] == ["raccoon"] and models["starry_night"]["app"] == "style"
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "fetch(" in client.get("/static/app.js").text
    assert "/v1/detect" in client.get("/openapi.json").json()["paths"]
    docs = client.get("/docs").text  # Swagger UI from the package's files, never a CDN
    assert "/static/swagger/swagger-ui-bundle.js" in docs and "cdn." not in docs
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200


def test_models_spec_is_checked():
    assert parse_models("cat, detect=runs/x ,style,style=kandinsky") == [
        ("cat", None), ("detect", "runs/x"), ("style", None), ("style", "kandinsky")]  # fmt: skip
    for spec, message in (("dog", "unknown app 'dog'"), ("cat,cat", "given twice"), ("finetune", "needs its model")):
        with pytest.raises(ValueError, match=message):
            parse_models(spec)


# === Answers equal to the app classes' ===


def test_classify_answers_as_predict_with_multipart_or_base64(client):
    expected = dlapps.CatClassifier.from_preset().predict(EXAMPLES / "chelsea.png").to_dict()
    by_upload = client.post("/v1/classify", files=upload(EXAMPLES / "chelsea.png")).json()
    by_json = client.post("/v1/classify", json={"image": b64(EXAMPLES / "chelsea.png")}).json()
    assert by_upload == {**expected, "path": "chelsea.png"}
    assert by_json == {**expected, "path": "<bytes>"}
    data_url = "data:image/png;base64," + b64(EXAMPLES / "chelsea.png")
    assert client.post("/v1/classify", json={"image": data_url}).json()["probability"] == expected["probability"]


def test_detect_answers_as_predict_with_thresholds_and_explains_the_grid(client):
    detector = dlapps.ObjectDetector.from_preset("raccoon")
    expected = detector.predict(EXAMPLES / "raccoons.jpg", score_threshold=0.2).to_dict()
    answer = client.post("/v1/detect", files=upload(EXAMPLES / "raccoons.jpg"),
                         data={"score_threshold": "0.2", "explain": "true"}).json()  # fmt: skip
    grid = answer.pop("grid")
    assert answer == {**expected, "path": "raccoons.jpg"} and len(expected["detections"]) >= 1
    assert grid["input_size"] == 320 and [s["cells"] for s in grid["scales"]] == [40, 20, 10]
    assert len(grid["boxes"]) == len(expected["detections"])
    for box, found in zip(grid["boxes"], expected["detections"], strict=True):
        x0, y0, x1, y1 = box["cell_box"]
        centre = ((found["box"][0] + found["box"][2]) / 2, (found["box"][1] + found["box"][3]) / 2)
        assert x0 <= centre[0] <= x1 and y0 <= centre[1] <= y1  # the responsible cell holds the box's centre
    bad = client.post("/v1/detect", files=upload(EXAMPLES / "raccoons.jpg"), data={"score_threshold": "2"})
    assert bad.status_code == 422 and "score_threshold" in bad.json()["error"]


def test_tf_serving_route_answers_each_instance(client):
    expected = dlapps.CatClassifier.from_preset().predict(EXAMPLES / "coffee.png").to_dict()
    body = {"instances": [{"b64": b64(EXAMPLES / "coffee.png")}, {"image": {"b64": b64(EXAMPLES / "coffee.png")}}]}
    answer = client.post("/v1/models/cat:predict", json=body)
    assert answer.status_code == 200 and answer.json()["predictions"] == [{**expected, "path": "<bytes>"}] * 2
    assert client.post("/v1/models/dog:predict", json=body).status_code == 404
    assert client.post("/v1/models/cat:classify", json=body).status_code == 404
    assert client.post("/v1/models/cat:predict", json={"inputs": []}).status_code == 400
    faceless = client.post("/v1/models/faces:predict", json={"instances": [{"b64": b64(EXAMPLES / "coffee.png")}]})
    assert faceless.status_code == 422 and faceless.json()["error"].startswith("instances[0]: no face found")


def test_style_answers_as_stylise_and_shows_its_painting(client):
    expected = dlapps.StyleTransfer.from_preset("starry_night").stylise(EXAMPLES / "chelsea.png", 0.5)
    answer = client.post("/v1/style", files=upload(EXAMPLES / "chelsea.png"), data={"strength": "0.5"}).json()
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer.pop("image").split(",")[1]))))
    assert np.array_equal(image, expected.image)
    assert answer == {"content": "chelsea.png", "style": "starry_night", "width": 451, "height": 300}
    painting = client.get("/v1/style/paintings/starry_night")
    assert painting.status_code == 200 and Image.open(io.BytesIO(painting.content)).size[0] > 0
    costs = client.post("/v1/style", files=upload(EXAMPLES / "chelsea.png"), data={"losses": "true"}).json()
    expected = dlapps.StyleTransfer.from_preset("starry_night")
    want = expected.losses(expected.stylise(EXAMPLES / "chelsea.png"))
    assert costs["losses"] == pytest.approx(want, rel=1e-5) and costs["losses"]["style"] > 0
    assert costs["losses"]["total"] == pytest.approx(sum(costs["losses"][k] * costs["losses"][k + "_weight"]
                                                         for k in ("content", "style", "tv")), rel=1e-4)  # fmt: skip
    painting = EXAMPLES.parent / "dlapps/saved_models/style_transfer/kandinsky/style.jpg"
    own = client.post("/v1/style", files={**upload(EXAMPLES / "chelsea.png"), **upload(painting, "style_image")},
                      data={"strength": "0.9"})  # fmt: skip
    expected = dlapps.StyleTransfer.arbitrary().stylise(EXAMPLES / "chelsea.png", painting, 0.9)
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(own.json()["image"].split(",")[1]))))
    assert own.status_code == 200 and np.array_equal(image, expected.image)
    missing = client.post("/v1/style", files=upload(EXAMPLES / "chelsea.png"), data={"style": "mona_lisa"})
    assert missing.status_code == 404 and "starry_night" in missing.json()["error"]


# === Faces and the gallery ===


def test_verify_embed_and_the_aligned_chips(client):
    files = {**upload(EXAMPLES / "astronaut.png", "image_a"), **upload(FACES / "astronaut_face.jpg", "image_b")}
    answer = client.post("/v1/faces/verify", files=files, data={"chips": "true"}).json()
    expected = dlapps.FaceVerifier.from_preset().verify(EXAMPLES / "astronaut.png", FACES / "astronaut_face.jpg")
    chips = answer.pop("chips")
    assert answer == {**expected.to_dict(), "image_a": "astronaut.png", "image_b": "astronaut_face.jpg"}
    assert [Image.open(io.BytesIO(base64.b64decode(c.split(",")[1]))).size for c in chips] == [(150, 150)] * 2
    embedded = client.post("/v1/faces/embed", files=upload(EXAMPLES / "astronaut.png")).json()["faces"]
    assert len(embedded) == 1 and abs(np.linalg.norm(embedded[0]["embedding"]) - 1) < 1e-4
    no_face = client.post("/v1/faces/embed", files=upload(EXAMPLES / "coffee.png"))
    assert no_face.status_code == 422 and no_face.json()["error"] == "no face found in coffee.png"


def test_gallery_subjects_faces_and_identify(client, registry):
    assert client.post("/v1/faces/subjects", data={"subject": "Eileen"}).json() == {"subject": "Eileen", "faces": 0}
    assert client.post("/v1/faces/subjects", data={"subject": "Eileen"}).status_code == 409
    added = client.post("/v1/faces/subjects/Eileen/faces", files=upload(EXAMPLES / "astronaut.png"))
    assert added.status_code == 201 and added.json()["faces"] == 1
    assert client.put("/v1/faces/subjects/Eileen", data={"subject": "Eileen Collins"}).json()["faces"] == 1
    assert client.put("/v1/faces/subjects/Nobody", data={"subject": "X"}).status_code == 404
    name = "..\\etc passwd"  # a name is data, never a path; a "/" (no URL could name it) or 201 characters are refused
    assert client.post("/v1/faces/subjects", data={"subject": name}).status_code == 201
    for bad in ("AC/DC", "x" * 201, "  "):
        refused = client.post("/v1/faces/subjects", data={"subject": bad})
        assert refused.status_code == 422, refused.json()
    assert {s["subject"] for s in client.get("/v1/faces/subjects").json()["subjects"]} == {"Eileen Collins", name}
    found = client.post("/v1/faces/identify", files=upload(FACES / "astronaut_face.jpg")).json()["faces"]
    assert found[0]["name"] == "Eileen Collins" and found[0]["path"] == "astronaut_face.jpg"
    stranger = client.post("/v1/faces/identify", files=upload(FACES / "astronaut_face.jpg"), data={"top_k": "1"})
    assert len(stranger.json()["faces"][0]["top_k"]) == 1
    faces = client.get("/v1/faces/subjects/Eileen Collins/faces").json()["faces"]
    face_id = faces[0]["face_id"]
    assert client.delete(f"/v1/faces/subjects/Eileen Collins/faces/{face_id + 99}").status_code == 404
    assert client.delete(f"/v1/faces/subjects/Eileen Collins/faces/{face_id}").json()["faces"] == 0
    assert client.delete("/v1/faces/subjects/Eileen Collins").json() == {"deleted": "Eileen Collins"}
    assert client.delete("/v1/faces/subjects/Eileen Collins").status_code == 404
    assert [p.name for p in registry.gallery_path.parent.iterdir()] == ["gallery.db"]


def test_concurrent_enrolments_lose_nothing(client):
    names = [f"person {i}" for i in range(8)]
    photo = (EXAMPLES / "astronaut.png").read_bytes()
    answers = []

    def enroll(name):
        answers.append(client.post(f"/v1/faces/subjects/{name}/faces", files={"image": ("a.png", photo)}))

    threads = [threading.Thread(target=enroll, args=(name,)) for name in names]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    assert [a.status_code for a in answers] == [201] * 8
    stored = {s["subject"]: s["faces"] for s in client.get("/v1/faces/subjects").json()["subjects"]}
    assert all(stored.get(name) == 1 for name in names)


# === Safe by default: errors as JSON, limits, keys, CORS ===


def test_errors_are_json_with_the_right_status(client, tmp_path, monkeypatch):
    text = tmp_path / "photo.jpg"  # a name that lies: the content is sniffed
    text.write_text("not a picture")
    cases = [
        (client.post("/v1/classify", files=upload(text)), 415, "image: not an image"),
        (client.post("/v1/classify", data={"model": "cat"}), 400, "missing field 'image'"),
        (client.post("/v1/classify", json={"image": "***"}), 400, "image: not valid base64"),
        (client.post("/v1/classify", content=b"{", headers={"content-type": "application/json"}), 400, "not valid"),
        (client.post("/v1/classify", content=b"x", headers={"content-type": "text/plain"}), 415, "unsupported"),
        (client.post("/v1/classify", files=upload(EXAMPLES / "coffee.png"), data={"model": "dog"}), 404, "no class"),
        (client.get("/v1/nothing"), 404, "Not Found"),
        (
            client.post("/v1/detect", files=upload(EXAMPLES / "coffee.png"), data={"scoreThreshold": "0.9"}),
            422,
            "unknown field 'scoreThreshold'; did you mean 'score_threshold'?",
        ),
        (
            client.post("/v1/detect", files=upload(EXAMPLES / "coffee.png"), data={"explain": "maybe"}),
            422,
            "explain: expected true or false",
        ),
        (
            client.post(
                "/v1/style",
                files={**upload(EXAMPLES / "coffee.png"), **upload(EXAMPLES / "rocket.jpg", "style_image")},
                data={"style": "starry_night"},
            ),
            422,
            "not both",
        ),
        (client.delete("/v1/faces/subjects/x/faces/abc"), 422, "face_id"),
    ]
    for response, status, message in cases:
        assert response.status_code == status and message in response.json()["error"], response.json()
    monkeypatch.setattr("dlapps.data.images.MAX_IMAGE_PIXELS", 100)  # a decompression bomb, in miniature
    bomb = client.post("/v1/classify", files=upload(EXAMPLES / "coffee.png"))
    assert bomb.status_code == 413 and "too large" in bomb.json()["detail"]


def test_body_limit_api_key_and_cors(registry):
    small = TestClient(create_app(registry, max_upload_bytes=1000))
    assert small.post("/v1/classify", files=upload(EXAMPLES / "coffee.png")).status_code == 413
    chunked = small.post("/v1/classify", content=iter([b"x" * 600, b"y" * 600]),
                         headers={"content-type": "application/json"})  # fmt: skip
    assert chunked.status_code == 413  # no Content-Length: counted as it arrives
    keyed = TestClient(create_app(registry, api_key="s3cret"))
    assert keyed.get("/v1/models").status_code == 401 and keyed.get("/healthz").status_code == 200
    assert keyed.get("/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
    assert keyed.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert keyed.get("/v1/models", headers={"X-API-Key": "wrong"}).status_code == 401
    with pytest.raises(Exception), keyed.websocket_connect("/v1/stream/detect") as socket:  # noqa: B017
        socket.receive_text()
    origin = {"Origin": "https://example.org"}
    assert "access-control-allow-origin" not in TestClient(create_app(registry)).get("/healthz", headers=origin).headers
    allowed = TestClient(create_app(registry, cors_origin="https://example.org")).get("/healthz", headers=origin)
    assert allowed.headers["access-control-allow-origin"] == "https://example.org"


def test_command_line_refuses_an_open_host_without_a_key_and_bad_models(capsys, monkeypatch):
    monkeypatch.delenv("DLAPPS_API_KEY", raising=False)
    assert cli(["serve", "--host", "0.0.0.0"]) == 2
    assert "--api-key" in capsys.readouterr().err
    assert cli(["serve", "--models", "cat,dog"]) == 2
    assert "unknown app 'dog'" in capsys.readouterr().err


# === Webcam and video ===


def test_webcam_stream_annotates_frames_and_takes_options(client):
    frame = (EXAMPLES / "raccoons.jpg").read_bytes()
    with client.websocket_connect("/v1/stream/detect?score_threshold=0.2") as socket:
        socket.send_bytes(frame)
        annotated = Image.open(io.BytesIO(socket.receive_bytes()))
        assert annotated.format == "JPEG" and annotated.size == (600, 450)
        socket.send_text(json.dumps({"score_threshold": 5}))
        assert "score_threshold" in json.loads(socket.receive_text())["error"]
        socket.send_bytes(b"not a frame")
        assert "not an image" in json.loads(socket.receive_text())["error"]
    with client.websocket_connect("/v1/stream/cat") as socket:
        assert "no webcam or video for 'cat'" in json.loads(socket.receive_text())["error"]


def test_video_upload_returns_a_webm_of_every_frame(client, tmp_path):
    import cv2

    source = write_clip(tmp_path / "clip.mp4")
    answer = client.post("/v1/video/style", files={"video": ("clip.mp4", source.read_bytes())})
    assert answer.status_code == 200 and answer.headers["content-type"] == "video/webm"
    assert answer.headers["x-frames"] == "6" and answer.content[:4] == b"\x1a\x45\xdf\xa3"
    (tmp_path / "out.webm").write_bytes(answer.content)
    capture = cv2.VideoCapture(str(tmp_path / "out.webm"))
    assert int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") == b"VP90"
    assert client.post("/v1/video/detect", files=upload(EXAMPLES / "coffee.png", "video")).status_code == 415


# === Micro-batches ===


def test_micro_batches_gather_waiting_calls_keep_order_and_pass_errors_on():
    import time

    from dlapps.serve.batching import MicroBatcher

    seen = []

    def run_batch(items):
        seen.append(list(items))
        time.sleep(0.05)  # busy: later calls wait and form the next batch
        if "bad" in items:
            raise ValueError("bad item")
        return [item * 2 for item in items]

    batcher = MicroBatcher(run_batch, max_batch=3)
    answers = {}

    def call(item):
        try:
            answers[item] = batcher(item)
        except ValueError as error:
            answers[item] = str(error)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(7)]
    for thread in threads:
        thread.start()
        time.sleep(0.002)
    for thread in threads:
        thread.join()
    assert answers == {n: 2 * n for n in range(7)}
    assert max(len(batch) for batch in seen) == 3 and sum(len(batch) for batch in seen) == 7 and len(seen) < 7
    with pytest.raises(ValueError, match="bad item"):
        batcher("bad")
    assert batcher(5) == 10  # the worker goes on after an error
    with pytest.raises(ValueError, match="at least 1"):
        MicroBatcher(run_batch, max_batch=0)


def test_concurrent_detect_requests_share_network_calls_and_answer_as_predict(registry):
    from concurrent.futures import ThreadPoolExecutor

    served = registry.need("detect")
    assert served.batcher is not None
    photos = [EXAMPLES / "raccoons.jpg", EXAMPLES / "chelsea.png", EXAMPLES / "rocket.jpg"] * 4
    expected = [served.instance.predict(photo).to_dict() for photo in photos]
    before = len(served.batcher.sizes)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda photo: served.batcher(served.instance.prepare(photo)).to_dict(), photos))
    assert len(served.batcher.sizes) - before <= len(photos)
    for answer, one in zip(answers, expected, strict=True):
        assert answer["path"] == one["path"] and len(answer["detections"]) == len(one["detections"])
        for found, box in zip(answer["detections"], one["detections"], strict=True):
            assert found["class"] == box["class"] and np.allclose(found["box"], box["box"], atol=0.11)
