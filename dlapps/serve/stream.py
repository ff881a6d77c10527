"""Webcam and video for `dlapps serve`: the browser's camera through a WebSocket (JPEG frames in, annotated JPEG
frames back) and a video upload answered with the annotated video as WebM/VP9 (what Chromium plays; OpenCV's wheel
has no H.264 encoder), for detect, faces and style. One frame rule for both: `frame_transform`.
"""

import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from dlapps.serve.inputs import RequestError, need, number, read_fields
from dlapps.serve.registry import NotLoaded

log = logging.getLogger("dlapps")
STREAM_APPS = ("detect", "faces", "style")
MAX_VIDEO_FRAMES = 600  # an upload is answered in one request: about 20 s of 30 fps video
VIDEO_SIGNATURES = ((0, b"\x1aE\xdf\xa3"), (4, b"ftyp"), (8, b"AVI "))  # WebM/Matroska, MP4/MOV, AVI


def frame_transform(registry, app, options):
    """fn(RGB uint8 (H, W, 3)) -> the annotated (detect, faces) or stylised (style) frame, RGB uint8.

    Args:
        app: detect, faces or style.
        options: detect: score_threshold, iou_threshold, max_detections; faces: none (faces are named against the
            gallery when it has people, else boxed); style: style (a loaded painting), strength.

    Raises:
        LookupError: the app is not served. ValueError: an option out of range.
    """
    if app not in STREAM_APPS:
        raise NotLoaded(f"no webcam or video for {app!r}; choose from {', '.join(STREAM_APPS)}")
    if app == "detect":
        served = registry.need("detect")
        thresholds = {key: options.get(key) for key in ("score_threshold", "iou_threshold", "max_detections")}
        with served as detector:
            detector._detector(**thresholds)  # checks the values once, before the first frame

        def detect(rgb):
            with served as detector:
                return detector.predict(rgb, **thresholds).plot()

        return detect
    if app == "style":
        served = registry.style(options.get("style"))
        strength = float(options.get("strength", 1.0))
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength: expected a number from 0 to 1; received {strength!r}")

        def stylise(rgb):
            with served as model:
                return model.stylise(rgb, strength).image

        return stylise
    return _faces_transform(registry)


def _faces_transform(registry):
    from dlapps.data.faces import NoFaceError
    from dlapps.gallery import GalleryIndex
    from dlapps.plots import draw_detections

    served = registry.need("faces")
    index = None
    if registry.gallery_path.is_file():
        gallery = registry.gallery()
        try:
            index = GalleryIndex(*gallery.embeddings())
        finally:
            gallery.close()
        index = index if len(index.people) else None

    def faces(rgb):
        with served as verifier:
            try:
                if index is None:
                    found = [(face, "face", 1.0) for face, _ in verifier.chips(rgb, all_faces=True)]
                else:
                    found = [(r.box, r.name, r.distance) for r in verifier.identify(rgb, index, all_faces=True)]
            except NoFaceError:
                return rgb
        boxes = [face if isinstance(face, list) else list(face.box) for face, _, _ in found]
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in boxes], np.float32).reshape(-1, 4)
        names = sorted({name for _, name, _ in found})
        classes = np.array([names.index(name) for _, name, _ in found])
        scores = np.array([score for _, _, score in found], np.float32)
        return draw_detections(rgb, boxes, classes, scores, names)

    return faces


def decode_frame(data):
    """A webcam frame's JPEG (or PNG) bytes as RGB uint8, by the one decoding rule."""
    from dlapps.apps.base import to_image

    return to_image(data)


def _annotate(transform, data):
    return encode_jpeg(transform(decode_frame(data)))


def encode_jpeg(rgb, quality=85):
    from dlapps.data.images import encode_image

    return encode_image(rgb, "JPEG", quality=quality)


def stream_options(query):
    """A stream's options from the WebSocket's query string or a text message (numbers as numbers)."""
    options = {}
    for key, value in dict(query).items():
        if key in ("score_threshold", "iou_threshold", "strength"):
            options[key] = float(value)
        elif key == "max_detections":
            options[key] = int(value)
        elif key == "style":
            options[key] = str(value)
    return options


def add_routes(app, registry):
    from fastapi import Request, WebSocket, WebSocketDisconnect
    from fastapi.responses import Response
    from starlette.concurrency import run_in_threadpool

    from dlapps.serve.app import form_body, work

    @app.websocket("/v1/stream/{name}")
    async def stream(websocket: WebSocket, name: str):
        """The webcam: send JPEG frames (binary messages), receive annotated JPEG frames; a text message of JSON
        options (`{"score_threshold": 0.3}`, `{"style": "kandinsky", "strength": 0.8}`) changes them; problems come
        back as text `{"error": ...}` and the stream goes on."""
        await websocket.accept()
        try:
            options = stream_options(websocket.query_params)
            transform = await run_in_threadpool(frame_transform, registry, name, options)
        except (LookupError, ValueError) as error:
            await websocket.send_text(json.dumps({"error": str(error).strip("'\"")}))
            return await websocket.close(code=1008)
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text"):
                    try:
                        options.update(stream_options(json.loads(message["text"])))
                        transform = await run_in_threadpool(frame_transform, registry, name, options)
                    except (LookupError, ValueError, TypeError) as error:
                        await websocket.send_text(json.dumps({"error": str(error).strip("'\"")}))
                    continue
                try:
                    frame = await run_in_threadpool(_annotate, transform, message["bytes"])
                except ValueError as error:
                    await websocket.send_text(json.dumps({"error": str(error)}))
                    continue
                await websocket.send_bytes(frame)
        except WebSocketDisconnect:
            return

    @app.post("/v1/video/{name}", response_class=Response, openapi_extra=form_body(
        video=("file", "a video file (MP4, MOV, WebM, AVI)"), score_threshold=("number", "detect: 0-1"),
        style=("string", "style: a loaded painting"), strength=("number", "style: 0-1"),
        max_size=("integer", "frames shrunk to this longest side (default 640)")))  # fmt: skip
    async def video(name: str, request: Request):
        """The annotated (detect, faces) or stylised (style) video as WebM/VP9, playable in the page; at most
        600 frames (longer videos: `dlapps <app> predict VIDEO`)."""
        fields = await read_fields(request)
        data = need(fields, "video")
        if isinstance(data, str) or not any(data[at : at + len(sig)] == sig for at, sig in VIDEO_SIGNATURES):
            raise RequestError(415, "video: not a video file", "send MP4, MOV, WebM or AVI bytes")
        options = stream_options({k: v for k, v in fields.items() if isinstance(v, str)})
        max_size = number(fields, "max_size", int, 640, 16, 4096)

        def run():
            from dlapps.data.video import transform_video

            transform = frame_transform(registry, name, options)
            with tempfile.TemporaryDirectory(prefix="dlapps-video-") as folder:
                source, target = Path(folder) / "upload.bin", Path(folder) / "annotated.webm"
                source.write_bytes(data)
                frames = transform_video(source, target, transform, max_size, max_frames=MAX_VIDEO_FRAMES)
                return target.read_bytes(), frames

        body, frames = await work(run)
        return Response(body, media_type="video/webm", headers={"X-Frames": str(frames)})
