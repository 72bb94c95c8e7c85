"""The annotation web app (Starlette): one image at a time, Accept or Reject, blind.

Blind: pages, URLs and image responses never name the model or the variant; images are served
by opaque ids, re-encoded without their PNG metadata at one size. Safe: only token holders see
images or post answers; the login token lives only in an HttpOnly cookie, and every
state-changing request must come from the same origin and carry the page's CSRF token in a
header; an annotator can only see and answer their own assigned images. Request bodies are
small JSON objects, refused beyond MAX_BODY before they are read in full.

Database work runs in worker threads, never on the event loop, and reads never take the write
lock, so one request waiting to write does not freeze the other pages.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..runs import RunPaths
from . import storage
from .blind import blind_png

STATIC = Path(__file__).parent / "static"
COOKIE = "act2i_token"
CSRF_HEADER = "x-act2i-csrf"
MAX_BODY = 64 * 1024  # bytes; an answer is well under 20 KiB
MAX_COMMENT = 2000
MAX_ID = 64
MAX_SECONDS = 24 * 3600


class Denied(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def create_app(run_root: str | Path) -> Starlette:
    """The app for a run whose study database is already set up (see `prepare_study`)."""
    paths = RunPaths(run_root)
    root, db = paths.root, paths.annotations_db_path

    # Endpoints defined with `def` run in Starlette's thread pool; `answer` hands its database work there.
    def annotator(request: Request, write: bool = False) -> str:
        token = request.cookies.get(COOKIE)
        if not token:
            raise Denied(401, "Sign in with your personal link first.")
        name = storage.annotator_for(db, token)
        if name is None:
            raise Denied(403, "This link or token is not valid.")
        if write:
            _same_origin(request)
            if not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), storage.csrf_token(db, token)):
                raise Denied(403, "This request lacks the page's security token; reload the page.")
        return name

    async def landing(request: Request):
        return HTMLResponse("<!doctype html><title>act2i</title><p>act2i annotation server: open the personal link you were given.</p>")

    def login(request: Request):
        token = request.query_params.get("token", "")
        if storage.annotator_for(db, token) is None:
            return HTMLResponse("<!doctype html><title>act2i</title><p>This link is not valid.</p>", status_code=403)
        response = RedirectResponse("/annotate", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    def page(request: Request):
        token = request.cookies.get(COOKIE)
        if storage.annotator_for(db, token) is None:
            return HTMLResponse("<!doctype html><title>act2i</title><p>Sign in with your personal link first.</p>", status_code=401)
        html = (STATIC / "index.html").read_text(encoding="utf-8").replace("{{CSRF}}", storage.csrf_token(db, token))
        html = html.replace("{{TAGS}}", json.dumps(list(storage.TAGS)))
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    def next_payload(conn, name: str) -> dict:
        done, total = storage.progress(conn, name)
        row = storage.next_image(conn, name)
        if row is None:
            return {"finished": True, "done": done, "total": total}
        return {"finished": False, "image_id": row["image_id"], "prompt": row["prompt"], "done": done, "total": total}

    def api_next(request: Request):
        name = annotator(request)
        with storage.connect(db, write=False) as conn:
            return JSONResponse(next_payload(conn, name))

    def image(request: Request):
        name = annotator(request)
        image_id = _text(request.path_params["image_id"], "image id", MAX_ID)
        with storage.connect(db, write=False) as conn:
            row = conn.execute("SELECT i.path FROM images i JOIN assignments a USING (image_id) "
                               "WHERE a.annotator = ? AND i.image_id = ?", (name, image_id)).fetchone()
        if row is None:
            raise Denied(404, "No such image for you.")
        path = (root / row["path"]).resolve()
        if root not in path.parents:  # only files inside the run directory, whatever the database says
            raise Denied(404, "No such image for you.")
        return Response(blind_png(path), media_type="image/png", headers={"Cache-Control": "private, no-store"})

    def store_answer(name: str, body: dict) -> JSONResponse:
        image_id, label = body.get("image_id"), body.get("label")
        tags, comment, seconds = body.get("tags", []), body.get("comment", ""), body.get("seconds")
        image_id = _text(image_id, "image_id", MAX_ID)
        if label not in storage.LABELS:
            raise Denied(400, "label must be 'accept' or 'reject'.")
        if not isinstance(tags, list) or any(t not in storage.TAGS for t in tags):
            raise Denied(400, "tags must be a list drawn from: " + ", ".join(storage.TAGS))
        comment = _text(comment, "comment", MAX_COMMENT)
        if seconds is not None and (not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds <= MAX_SECONDS):
            raise Denied(400, "seconds must be a number between 0 and 86400.")
        with storage.connect(db) as conn:
            if conn.execute("SELECT 1 FROM assignments WHERE annotator = ? AND image_id = ?", (name, image_id)).fetchone() is None:
                raise Denied(404, "This image is no longer assigned to you; it may have moved to another annotator.")
            try:
                conn.execute("INSERT INTO answers (annotator, image_id, label, tags, comment, seconds) VALUES (?, ?, ?, ?, ?, ?)",
                             (name, image_id, label, ",".join(t for t in storage.TAGS if t in tags), comment.strip(), seconds))
            except Exception as err:  # noqa: BLE001 - the unique index refuses a second live answer
                if "UNIQUE" in str(err):
                    raise Denied(409, "This image was already answered, perhaps in another tab; "
                                      "undo it first to change the answer.") from None
                raise
            return JSONResponse(next_payload(conn, name))

    async def answer(request: Request):
        name = await run_in_threadpool(annotator, request, True)  # strangers are refused before their body is read
        body = await _json(request)
        return await run_in_threadpool(store_answer, name, body)

    def undo(request: Request):
        name = annotator(request, write=True)
        with storage.connect(db) as conn:
            last = conn.execute("SELECT answer_id FROM answers WHERE annotator = ? AND undone = 0 AND source = 'web' "
                                "ORDER BY answer_id DESC LIMIT 1", (name,)).fetchone()
            if last is None:
                raise Denied(409, "Nothing to undo.")
            conn.execute("UPDATE answers SET undone = 1 WHERE answer_id = ?", (last["answer_id"],))
            return JSONResponse(next_payload(conn, name))

    async def denied(request: Request, exc: Denied):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    routes = [
        Route("/", landing), Route("/login", login), Route("/annotate", page),
        Route("/api/next", api_next), Route("/api/answer", answer, methods=["POST"]), Route("/api/undo", undo, methods=["POST"]),
        Route("/img/{image_id:str}", image), Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={Denied: denied})


def _same_origin(request: Request) -> None:
    expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer", "")
        if not referer.startswith(expected + "/"):
            raise Denied(403, "Cross-origin or unlabelled request refused.")
    elif origin != expected:
        raise Denied(403, "Cross-origin request refused.")


def _text(value, what: str, limit: int) -> str:
    """`value` if it is text SQLite can store (no lone surrogates) of at most `limit` characters."""
    if not isinstance(value, str) or len(value) > limit:
        raise Denied(400, f"{what} must be text of at most {limit} characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Denied(400, f"{what} is not valid Unicode text (it holds half of a surrogate pair).") from None
    return value


async def _json(request: Request) -> dict:
    """The body as a JSON object, refused (413) past MAX_BODY bytes whether announced or streamed."""
    too_large = Denied(413, f"The request body is too large (over {MAX_BODY // 1024} KiB).")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise too_large
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # ValueError covers bad JSON and bytes that are not UTF-8
        raise Denied(400, "The request body must be JSON (UTF-8, not nested too deeply).") from None
    if not isinstance(body, dict):
        raise Denied(400, "The request body must be a JSON object.")
    return body
