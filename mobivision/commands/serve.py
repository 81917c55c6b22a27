"""Serve a model on a local web page: drop or pick an image and see the picture with the results drawn.

Usage::

    python tools/serve.py MODEL [--host 127.0.0.1] [--port 8000] [--max-upload-mb 10] [--max-image-mpx 50]

``MODEL`` is a task checkpoint (``.ckpt``), an exported ``.onnx`` or OpenVINO IR ``.xml`` (``mobivision.load``).
``GET /`` is the page (plain HTML and a little JavaScript, nothing downloaded: a geo model's location is drawn on an
inline SVG world map); ``POST /predict`` with the image as the multipart file field ``image`` answers JSON for programs:
``{"result": Result.to_dict(), "line": Result.line(), "picture": "data:image/jpeg;base64,..."}`` (the picture
is ``Result.plot()``; ``null`` for an image too elongated to draw, with the reason in ``"no_picture"``). Errors
answer ``{"error": "..."}``: 413 for a file over ``--max-upload-mb`` (checked while the upload is read, not after)
or an image over ``--max-image-mpx`` million pixels (checked from its header, before decoding), 415 for a file
Pillow cannot read, 400 for a request without the ``image`` field. Decoding, the model and drawing run in a worker
thread, one image at a time (so at most one image's pixels are in memory however many requests arrive), and the
server keeps answering meanwhile. The
server listens on the loopback interface unless ``--host`` says otherwise; it has no authentication. Needs the
``serve`` extra (``pip install 'mobivision[serve]'``: Starlette, uvicorn, python-multipart).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import html
import io
import itertools
import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import TYPE_CHECKING, Any

from mobivision.commands.cli import exit_code, positive_float, positive_int
from mobivision.data.images import DEFAULT_MAX_IMAGE_MPX, check_max_image_mpx
from mobivision.errors import ConfigError, MobivisionError, user_message

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request

    from mobivision.inference import Predictor, Result

PAGE_FILE = "serve_page.html"
FIELD = "image"  # the multipart file field POST /predict reads
MEGABYTE = 1_000_000


def unread_above(limit: int) -> int:
    """Request bodies larger than this are rejected unread (by their Content-Length); smaller ones over the
    limit are read to the end, their bytes beyond the limit dropped, so that the answer names the file and its
    size: twice the limit plus 1 MB (multipart boundaries and headers, other fields)."""
    return 2 * limit + MEGABYTE


class UploadError(Exception):
    """A request ``POST /predict`` answers with ``{"error": message}`` and ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def size_text(size: float) -> str:
    """``12.3 MB``, or ``12.3 kB`` under 0.1 MB (so a small file does not read as ``0.0 MB``)."""
    return f"{size / MEGABYTE:.1f} MB" if size >= MEGABYTE / 10 else f"{size / 1000:.1f} kB"


def limit_text(limit: int) -> str:
    """The limit as the ``--max-upload-mb`` value that set it: ``10 MB``, ``0.001 MB``."""
    return f"{limit / MEGABYTE:g} MB"


def too_large(name: str, size: int, limit: int) -> UploadError:
    return UploadError(413, f"{name} is {size_text(size)}, larger than the {limit_text(limit)} limit (--max-upload-mb)")


def _require_starlette() -> None:
    try:
        import python_multipart  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"mobivision serve needs Starlette, uvicorn and python-multipart ({exc.name} is missing): "
            "pip install 'mobivision[serve]'"
        ) from exc


# ---- reading the upload ----


class _UploadReader:
    """Streams a multipart body through python-multipart, keeping the bytes of the file field ``image`` up to
    ``limit``; beyond it the rest is counted, not kept. ``name`` and ``size`` then describe the file."""

    def __init__(self, boundary: bytes, limit: int) -> None:
        from python_multipart.multipart import MultipartParser

        self.limit = limit
        self.name: str | None = None  # the image field's file name, once its headers are read
        self.found = False
        self.size = 0
        self.chunks: list[bytes] = []
        self._in_image = False
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value_part,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
            },
        )

    def _part_begin(self) -> None:
        self._disposition, self._in_image = b"", False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_part(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._disposition)
        if options.get(b"name") == FIELD.encode() and not self.found:
            self.found = self._in_image = True
            self.name = options.get(b"filename", b"").decode("utf-8", "replace") or FIELD

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_image:
            return
        self.size += end - start
        if self.size <= self.limit:
            self.chunks.append(data[start:end])
        else:
            self.chunks.clear()  # over the limit: nothing more is kept

    def _part_end(self) -> None:
        self._in_image = False


async def read_upload(request: Request, limit: int) -> tuple[str, bytes]:
    """The file name and bytes of the upload's ``image`` field; ``UploadError`` (400, 413) if there is none or
    it is larger than ``limit`` bytes: a body over ``unread_above(limit)`` is rejected unread, else it is
    streamed and the file's bytes beyond the limit are dropped, not kept."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import parse_options_header

    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise UploadError(400, f"send the image as multipart/form-data with a file field {FIELD!r}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > unread_above(limit):
        raise too_large("the upload", int(declared), limit)
    reader = _UploadReader(options[b"boundary"], limit)
    try:
        async for chunk in request.stream():
            reader.parser.write(chunk)
            if reader.size > unread_above(limit):  # sent without a Content-Length (chunked): stop reading here
                break
        else:
            reader.parser.finalize()
    except FormParserError as exc:
        raise UploadError(400, f"the upload is not valid multipart/form-data ({exc})") from exc
    if not reader.found:
        raise UploadError(400, f"the request has no file field {FIELD!r}")
    if reader.size > limit:
        raise too_large(reader.name or FIELD, reader.size, limit)
    return reader.name or FIELD, b"".join(reader.chunks)


def decode_image(name: str, data: bytes, max_image_mpx: float) -> Any:
    """The upload as an ``H x W x 3`` uint8 array (read as ``mobivision.data.images.load_rgb`` reads files);
    ``UploadError`` 413 naming the file if it has more than ``max_image_mpx`` million pixels (from its header,
    nothing decoded), 415 if Pillow cannot read it."""
    from PIL import UnidentifiedImageError

    from mobivision.data.images import ImageTooLargeError, UnreadableImageError, open_rgb

    try:
        return open_rgb(io.BytesIO(data), name, max_image_mpx=max_image_mpx, option="--max-image-mpx")
    except ImageTooLargeError as exc:
        raise UploadError(413, f"{name}: {exc.reason}") from exc
    except UnreadableImageError as exc:
        # Pillow names the BytesIO object ("cannot identify image file <_io.BytesIO ...>"): not worth showing
        cause = exc.__cause__
        reason = "cannot identify image file" if isinstance(cause, UnidentifiedImageError) else exc.reason
        raise UploadError(415, f"{name} is not an image Pillow can read ({reason})") from exc


def picture_data_url(result: Result, quality: int = 90) -> str | None:
    """``Result.plot()`` as a ``data:image/jpeg;base64,...`` URL; None for an image too elongated to draw
    (``Result.drawing_problem``)."""
    if result.drawing_problem:
        return None
    buffer = io.BytesIO()
    result.plot().save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ---- the page ----


def outline_path() -> str:
    """The coarse world outline (``mobivision.evaluation.world_outline``) as an SVG path in the page's map
    coordinates (x = longitude, y = -latitude); an edge across the antimeridian starts a new sub-path."""
    from mobivision.evaluation.world_outline import world_outline

    parts = []
    for ring in world_outline().values():
        closed = (*ring, ring[0])
        commands = [f"M{closed[0][0]:g} {-closed[0][1]:g}"]
        for (lon0, _), (lon, lat) in itertools.pairwise(closed):
            commands.append(f"{'M' if abs(lon - lon0) > 180 else 'L'}{lon:g} {-lat:g}")
        parts.append("".join(commands))
    return "".join(parts)


def render_page(predictor: Predictor, *, model_name: str, max_upload_bytes: int) -> str:
    """The HTML page with the model's name and kind, the upload limit and the map's outline filled in."""
    template = resources.files(__package__).joinpath(PAGE_FILE).read_text(encoding="utf-8")
    values = {
        "__MODEL__": html.escape(model_name),
        "__KIND__": html.escape(predictor.kind),
        "__LIMIT_BYTES__": str(max_upload_bytes),
        "__LIMIT_TEXT__": html.escape(limit_text(max_upload_bytes)),
        "__OUTLINE__": outline_path(),
    }
    for key, value in values.items():
        template = template.replace(key, value)
    return template


# ---- the application ----


def build_app(
    predictor: Predictor,
    *,
    max_upload_bytes: int = 10 * MEGABYTE,
    max_image_mpx: float = DEFAULT_MAX_IMAGE_MPX,
    score_threshold: float = 0.3,
    top_k: int = 5,
    model_name: str = "model",
) -> Starlette:
    """The Starlette application: ``GET /`` the page, ``POST /predict`` JSON (the module's docstring)."""
    _require_starlette()
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    if max_upload_bytes < 1:
        raise ConfigError(f"max_upload_bytes must be >= 1, got {max_upload_bytes}")
    check_max_image_mpx(max_image_mpx)
    page = render_page(predictor, model_name=model_name, max_upload_bytes=max_upload_bytes)
    # One image at a time from decoding to the picture, always in the same thread: runtimes need not be
    # thread-safe, and the memory taken is that of one image however many requests arrive (the uploads waiting
    # their turn are bounded by --max-upload-mb). One thread, not a lock in a pool of them: glibc gives each thread
    # its own heap, and memory one thread freed is not reused by the next, so a pool's footprint grows with it.
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mobivision-predict")

    def predict_sync(name: str, data: bytes) -> dict[str, Any]:
        image = decode_image(name, data, max_image_mpx)
        result = predictor(image, score_threshold=score_threshold, top_k=top_k, names=[name])
        answer = {"result": result.to_dict(), "line": result.line(), "picture": picture_data_url(result)}
        if result.drawing_problem:
            answer["no_picture"] = f"{name}: {result.drawing_problem}"
        return answer

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def predict(request: Request) -> JSONResponse:
        try:
            name, data = await read_upload(request, max_upload_bytes)
            answer = await asyncio.wrap_future(worker.submit(predict_sync, name, data))
        except UploadError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except MobivisionError as exc:
            return JSONResponse({"error": user_message(exc)}, status_code=400)
        except Exception as exc:  # the server keeps serving; the client learns what went wrong
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)
        return JSONResponse(json.loads(json.dumps(answer)))

    return Starlette(routes=[Route("/", index), Route("/predict", predict, methods=["POST"])])


# ---- the command ----


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a task checkpoint (.ckpt) or an exported model (.onnx, OpenVINO .xml)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1, loopback)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--max-upload-mb", type=positive_float, default=10.0, help="largest image file accepted, in MB (default 10)"
    )
    parser.add_argument(
        "--max-image-mpx",
        type=positive_float,
        default=DEFAULT_MAX_IMAGE_MPX,
        help=f"largest image accepted, in million pixels, read from its header (default {DEFAULT_MAX_IMAGE_MPX:g})",
    )
    parser.add_argument("--score-threshold", type=float, default=0.3, help="detections kept (default 0.3)")
    parser.add_argument(
        "--top-k", type=positive_int, default=5, help="classes / attributes / cells listed per image (default 5)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1... (default cpu)")
    return parser.parse_args(argv)


def _check_port(host: str, port: int) -> None:
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be in [0, 65535], got {port}")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): try another --port/--host") from exc


def run(args: argparse.Namespace) -> None:
    if not 0.0 <= args.score_threshold <= 1.0:
        raise ConfigError(f"--score-threshold must be in [0, 1], got {args.score_threshold}")
    _require_starlette()
    import uvicorn

    import mobivision

    _check_port(args.host, args.port)
    predictor = mobivision.load(args.model, device=args.device)
    app = build_app(
        predictor,
        max_upload_bytes=max(1, round(args.max_upload_mb * MEGABYTE)),
        max_image_mpx=args.max_image_mpx,
        score_threshold=args.score_threshold,
        top_k=args.top_k,
        model_name=str(args.model),
    )
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: anyone who can reach it can use the model (no authentication)")
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"serving {args.model} ({predictor.kind}) on http://{shown}:{args.port}/ (Ctrl+C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_code(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
