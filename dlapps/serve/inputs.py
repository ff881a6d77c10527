"""What a request carries, read safely: multipart or JSON (base64) fields, images sniffed by content, a body limit
enforced before it is read whole, the API key, and errors as JSON.

Error statuses: 400 a missing or malformed field, 401 a wrong or missing API key, 404 an unknown model or person,
409 a name already taken, 413 a body over the limit or an image over the decoder's pixel limit, 415 content that is
not an image, 422 an image or value the app refuses (no face, unreadable, out of range).
"""

import base64
import binascii
import hmac
import io
import json

from dlapps.results import NamedBytes

MAX_UPLOAD_BYTES = 20 * 1024 * 1024


class RequestError(Exception):
    """An error answered as JSON: `{"error": message, "detail": detail}` with `status`."""

    def __init__(self, status, error, detail=None):
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail

    def payload(self):
        return {"error": self.error, "detail": self.detail}


def sniff_image(data, field):
    """The image format of `data` from its content (Pillow reads the header only), never from a file name.

    Raises:
        RequestError: 415 when the bytes are not an image Pillow knows.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format
    except (UnidentifiedImageError, OSError, ValueError):
        head = data[:16]
        raise RequestError(415, f"{field}: not an image", f"content starts with {head!r}; send JPEG, PNG, WebP, "
                                                          "BMP, GIF or TIFF bytes") from None  # fmt: skip


def _b64(value, field):
    if isinstance(value, dict) and "b64" in value:  # TF Serving's {"b64": ...}
        value = value["b64"]
    if not isinstance(value, str):
        raise RequestError(400, f"{field}: expected base64 text (or a multipart file upload)")
    if value.startswith("data:") and "," in value:  # a data URL, as a browser's FileReader gives
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, f"{field}: not valid base64") from None


async def read_fields(request, images=()):
    """The request's fields as a dict: form fields (multipart or URL-encoded; files as `NamedBytes`) or a JSON object
    (the `images` fields base64-decoded). Every image field present is sniffed (415 when not an image).

    Raises:
        RequestError: 400 for a body that is neither, or bad base64; 415 for a non-image.
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form()
        fields = {}
        for key, value in form.multi_items():
            if hasattr(value, "read"):  # an uploaded file: its bytes, named by its file name in records and errors
                fields[key] = NamedBytes(await value.read(), value.filename)
            else:
                fields[key] = value
    elif kind in ("application/json", ""):
        body = await request.body()
        try:
            fields = json.loads(body) if body else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RequestError(400, "the body is not valid JSON", str(error)) from None
        if not isinstance(fields, dict):
            raise RequestError(400, "the JSON body must be an object of fields")
        for key in images:
            if key in fields:
                fields[key] = _b64(fields[key], key)
    else:
        raise RequestError(415, f"unsupported content type {kind!r}", "send multipart/form-data or JSON")
    _check_names(request, fields)
    for key in images:
        if key in fields:
            if isinstance(fields[key], str):
                raise RequestError(400, f"{key}: expected a file upload, received text")
            sniff_image(fields[key], key)
    return fields


def _check_names(request, fields):
    """422 for a field the route does not take (its OpenAPI description lists them), with a "did you mean"."""
    import difflib

    extra = getattr(request.scope.get("route"), "openapi_extra", None) or {}
    content = extra.get("requestBody", {}).get("content", {}).get("multipart/form-data", {})
    known = set(content.get("schema", {}).get("properties", {}))
    for key in fields:
        if known and key not in known:
            guess = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {guess[0]!r}?" if guess else f" (its fields: {', '.join(sorted(known))})"
            raise RequestError(422, f"unknown field {key!r}{hint}")


def need(fields, key):
    """A required field. Raises RequestError 400 naming it."""
    if fields.get(key) in (None, "", b""):
        raise RequestError(400, f"missing field {key!r}")
    return fields[key]


def number(fields, key, kind=float, default=None, low=None, high=None):
    """An optional number field (form text or JSON number), checked against [low, high].

    Raises:
        RequestError: 422 for a value that is not a number or is out of range.
    """
    value = fields.get(key)
    if value in (None, ""):
        return default
    try:
        value = kind(value)
    except (TypeError, ValueError):
        what = {"int": "a whole number", "float": "a number"}.get(kind.__name__, kind.__name__)
        raise RequestError(422, f"{key}: expected {what}; received {value!r}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise RequestError(422, f"{key}: expected a value from {low} to {high}; received {value!r}")
    return value


def flag(fields, key):
    """An optional yes/no field: true, 1, yes, on / false, 0, no, off (any case), or a JSON boolean.

    Raises:
        RequestError: 422 for anything else.
    """
    value = fields.get(key, False)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "1", "yes", "on", "false", "0", "no", "off", ""):
        raise RequestError(422, f"{key}: expected true or false; received {value!r}")
    return text in ("true", "1", "yes", "on")


def key_matches(given, expected):
    """Constant-time comparison of an API key (no timing hints); True when the server has no key."""
    return expected is None or (given is not None and hmac.compare_digest(str(given), str(expected)))


def given_key(scope_headers, query):
    """The API key a request presents: `X-API-Key`, `Authorization: Bearer KEY`, or `?api_key=` (WebSockets:
    browsers cannot set their headers)."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope_headers}
    if "x-api-key" in headers:
        return headers["x-api-key"]
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return query.get("api_key")


class GuardMiddleware:
    """Pure ASGI middleware in front of every route: the API key on `/v1` (HTTP and WebSocket), and the body limit
    (413 from Content-Length before reading; a chunked body is counted as it arrives and cut off at the limit).

    Why our own: Starlette has no body-size limit, and the key must also guard the WebSocket's handshake.
    """

    def __init__(self, app, api_key=None, max_bytes=MAX_UPLOAD_BYTES):
        self.app, self.api_key, self.max_bytes = app, api_key, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        from urllib.parse import parse_qs

        if scope["path"].startswith("/v1") and self.api_key is not None:
            query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
            if not key_matches(given_key(scope["headers"], query), self.api_key):
                if scope["type"] == "websocket":
                    return await send({"type": "websocket.close", "code": 1008, "reason": "API key required"})
                detail = "send it as X-API-Key or Authorization: Bearer"
                return await _send_json(send, 401, {"error": "API key required", "detail": detail})
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                return await _send_json(send, 413, _too_large(self.max_bytes))
            receive = self._counted(receive, send)
        return await self.app(scope, receive, send)

    def _counted(self, receive, send):
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise RequestError(413, **_too_large(self.max_bytes))
            return message

        return counted


def _too_large(limit):
    return {"error": "upload too large", "detail": f"the limit is {limit / 2**20:g} MB (dlapps serve --max-upload-mb)"}


async def _send_json(send, status, payload):
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
