"""Command line of the web server: `dlapps serve [--models ...] [--host 127.0.0.1] [--port 8000]`."""

import argparse
import os
import sys

from dlapps.cli.common import HelpFormatter, positive_float, positive_int

DESCRIPTION = (
    "Serve the apps over HTTP: a web page at / (a tab per app, webcam and video) and a REST API under /v1/ (OpenAPI "
    "docs at /docs). Each model is loaded once at start. Binds 127.0.0.1; any other --host needs an API key."
)
EXAMPLES = """examples:
  dlapps serve                                   # cat, detect (fruit), faces, style; open http://127.0.0.1:8000
  dlapps serve --models detect=raccoon,faces --port 8080
  dlapps serve --models finetune=runs/mine,cat
  DLAPPS_API_KEY=secret dlapps serve --host 0.0.0.0
  curl -F image=@examples/coffee.png http://127.0.0.1:8000/v1/detect
"""


def build_parser(prog="dlapps serve"):
    from dlapps.serve.registry import DEFAULT_MODELS

    class Formatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
        """The options' defaults shown, and the examples kept one per line."""

    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=Formatter)  # fmt: skip
    parser.add_argument(
        "--models",
        default=DEFAULT_MODELS,
        help="comma-separated apps to load: APP (its shipped model) or APP=FOLDER|PRESET; apps: cat, finetune, "
        "detect, faces, style (style may repeat; plain style loads every shipped painting)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; anything but 127.0.0.1 / localhost "
                        "needs --api-key")  # fmt: skip
    parser.add_argument("--port", type=positive_int, default=8000, help="port to listen on")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("DLAPPS_API_KEY"),
        help="key every /v1 route and the WebSocket require (default: $DLAPPS_API_KEY; none)",
    )
    parser.add_argument("--gallery", default="runs/serve/gallery.db", help="the faces gallery (SQLite; the same "
                        "file as dlapps faces enroll --db)")  # fmt: skip
    parser.add_argument("--max-upload-mb", type=positive_float, default=20.0, help="largest request body (413 above)")
    parser.add_argument("--concurrency", type=positive_int, default=4, help="calls of one model run at once (faces: "
                        "1); more queue")  # fmt: skip
    parser.add_argument(
        "--max-batch", type=positive_int, default=1,
        help="concurrent detect requests gathered in one network call (1: each alone; try 8 on a GPU: on 2 CPU cores "
        "it gained nothing)",
    )  # fmt: skip
    parser.add_argument("--cors-origin", default=None, help="allow pages of this origin to call the API (CORS off)")
    parser.add_argument("--duration", type=positive_float, default=None,
                        help="stop by itself after this many seconds (load tests, demos)")  # fmt: skip
    return parser


def main(argv=None, prog="dlapps serve"):
    args = build_parser(prog).parse_args(argv)
    from dlapps.serve.registry import parse_models

    try:
        entries = parse_models(args.models)
    except ValueError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
        print(f"{prog}: error: --host {args.host} exposes the server beyond this machine; set --api-key (or "
              "DLAPPS_API_KEY) first", file=sys.stderr)  # fmt: skip
        return 2
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as error:
        print(f"{prog}: error: {error.name} is missing; pip install 'dlapps[serve]'", file=sys.stderr)
        return 2
    from dlapps.cli.common import configure_logging

    configure_logging(prog)
    from dlapps.serve.app import create_app
    from dlapps.serve.registry import Registry

    try:
        registry = Registry(entries, args.gallery, lambda name, source: print(f"loaded {name}: {source}", flush=True),
                            args.concurrency, args.max_batch)  # fmt: skip
    except ValueError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    app = create_app(registry, args.api_key, int(args.max_upload_mb * 2**20), args.cors_origin)
    print(f"dlapps serve: http://{args.host}:{args.port}/ (page), /docs (API); models: "
          f"{', '.join(registry.names())}; gallery: {args.gallery}; Ctrl-C stops", flush=True)  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning"))
    if args.duration:
        import threading

        timer = threading.Timer(args.duration, lambda: setattr(server, "should_exit", True))
        timer.daemon = True
        timer.start()
    server.run()
    return 0
