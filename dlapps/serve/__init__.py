"""`dlapps serve`: the apps over HTTP (a REST API under `/v1/`), a web page at `/`, webcam and video, on FastAPI.

An optional extra: `pip install dlapps[serve]` (FastAPI, uvicorn, python-multipart, websockets).
"""


def __getattr__(name):
    if name == "create_app":
        from dlapps.serve.app import create_app

        return create_app
    if name in ("Registry", "parse_models"):
        from dlapps.serve import registry

        return getattr(registry, name)
    raise AttributeError(name)
