"""The annotation web app (Starlette): one image at a time, Accept or Reject, blind.

Blind: pages, URLs and image responses never name the model or the variant; images are served
by opaque ids, re-encoded without their PNG metadata at one size. Safe: only token holders see
images or post answers; the login token lives only in an HttpOnly cookie, and every
state-changing request must come from the same origin and carry the page's CSRF token in a
header; an annotator can only see and answer their own assigned images. Request bodies are
small JSON objects, refused beyond MAX_BODY before they are read in full.

Database work runs in worker threads, never on the event loop, and reads never take the write
lock, so one request waiting to write does not freeze the other pages.

A crowd study (`create_app(run, study=settings)`, see `crowd.py`) adds the worker's way in: the
study link (`/study?PROLIFIC_PID=...`), a consent page, an instruction page with two worked
examples, then the same annotator with the batch, and at the end the completion code and the
platform's link. Behind an HTTPS reverse proxy, links carry the app's root path (uvicorn's
`--root-path`) and the cookie is `Secure` when the request came over HTTPS (`X-Forwarded-Proto`,
trusted from the proxy's address by uvicorn).
"""

from __future__ import annotations

import hmac
import html
import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import InputError
from ..runs import RunPaths
from . import crowd, pairs, storage
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


def _completed(conn, name: str, payload: dict) -> dict:
    """`payload`, after noting the time a crowd worker finished (the first time it holds a completion code)."""
    if "completion" in payload:
        conn.execute("UPDATE workers SET completed = COALESCE(completed, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) "
                     "WHERE name = ?", (name,))
    return payload


def create_app(run_root: str | Path, study: crowd.Settings | None = None, pair_mode: bool = False) -> Starlette:
    """The app for a run whose study database is already set up (see `prepare_study`); with `study`,
    crowd workers come in through the study link; with `pair_mode`, people compare two images of one
    prompt (left, right, both good, both bad) instead of judging one."""
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
            return message_page("This link is not valid.", 403)
        return signed_in(request, token, "/annotate")

    def page(request: Request):
        token = request.cookies.get(COOKIE)
        if storage.annotator_for(db, token) is None:
            return message_page("Sign in with your personal link first.", 401)
        html = template(request, "pairs.html" if pair_mode else "index.html", CSRF=storage.csrf_token(db, token),
                        TAGS=json.dumps(list(storage.TAGS)))
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    def next_payload(conn, name: str) -> dict:
        done, total = storage.progress(conn, name)
        row = storage.next_image(conn, name)
        if row is None:
            finished = {"finished": True, "done": done, "total": total}
            if study is not None and total and done == total:
                finished["completion"] = crowd.completion(conn, study)
            return finished
        return {"finished": False, "image_id": row["image_id"], "prompt": row["prompt"], "done": done, "total": total}

    def api_next(request: Request):
        name = annotator(request)
        with storage.connect(db, write=False) as conn:
            return JSONResponse(next_payload(conn, name))

    def image(request: Request):
        token = request.cookies.get(COOKIE)
        if not token:
            raise Denied(401, "Sign in with your personal link first.")
        image_id = _text(request.path_params["image_id"], "image id", MAX_ID)
        with storage.connect(db, write=False) as conn:  # who and which image in one query: every answer fetches one
            row = conn.execute(
                """SELECT i.path FROM images i JOIN assignments a USING (image_id) JOIN annotators n ON n.name = a.annotator
                   WHERE n.token_hash = ?1 AND i.image_id = ?2
                   UNION ALL
                   SELECT i.path FROM pair_assignments a JOIN pairs p USING (pair_key) JOIN annotators n
                       ON n.name = a.annotator JOIN images i ON i.image_id IN (p.left_image, p.right_image)
                   WHERE n.token_hash = ?1 AND i.image_id = ?2 LIMIT 1""", (storage.hash_token(token), image_id)).fetchone()
        if row is None:
            raise Denied(404 if storage.annotator_for(db, token) else 403, "No such image for you.")
        path = (root / row["path"]).resolve()
        if root not in path.parents:  # only files inside the run directory, whatever the database says
            raise Denied(404, "No such image for you.")
        return Response(blind_png(path, paths.annotation_blind), media_type="image/png",
                        headers={"Cache-Control": "private, no-store"})

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
            return JSONResponse(_completed(conn, name, next_payload(conn, name)))

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

    # --- pairs: two images side by side ----------------------------------------------------------

    def pair_payload(conn, name: str) -> dict:
        done, total = pairs.pair_progress(conn, name)
        row = pairs.next_pair(conn, name)
        if row is None:
            finished = {"finished": True, "done": done, "total": total}
            if study is not None and total and done == total:
                finished["completion"] = crowd.completion(conn, study)
            return finished
        return {"finished": False, "pair": row["pair_key"], "left": row["left_image"], "right": row["right_image"],
                "prompt": row["prompt"], "done": done, "total": total}

    def api_next_pair(request: Request):
        name = annotator(request)
        with storage.connect(db, write=False) as conn:
            return JSONResponse(pair_payload(conn, name))

    def store_pair(name: str, body: dict) -> JSONResponse:
        key, choice, seconds = _text(body.get("pair"), "pair", MAX_ID), body.get("choice"), body.get("seconds")
        if choice not in pairs.CHOICES:
            raise Denied(400, "choice must be one of: " + ", ".join(pairs.CHOICES))
        if seconds is not None and (not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds <= MAX_SECONDS):
            raise Denied(400, "seconds must be a number between 0 and 86400.")
        with storage.connect(db) as conn:
            if conn.execute("SELECT 1 FROM pair_assignments WHERE annotator = ? AND pair_key = ?", (name, key)).fetchone() is None:
                raise Denied(404, "This pair is not assigned to you.")
            try:
                conn.execute("INSERT INTO pair_answers (annotator, pair_key, choice, seconds) VALUES (?, ?, ?, ?)",
                             (name, key, choice, seconds))
            except Exception as err:  # noqa: BLE001 - the unique index refuses a second live answer
                if "UNIQUE" in str(err):
                    raise Denied(409, "This pair was already answered, perhaps in another tab; undo it first to change "
                                      "the answer.") from None
                raise
            return JSONResponse(_completed(conn, name, pair_payload(conn, name)))

    async def answer_pair(request: Request):
        name = await run_in_threadpool(annotator, request, True)
        body = await _json(request)
        return await run_in_threadpool(store_pair, name, body)

    def undo_pair(request: Request):
        name = annotator(request, write=True)
        with storage.connect(db) as conn:
            last = conn.execute("SELECT answer_id FROM pair_answers WHERE annotator = ? AND undone = 0 "
                                "ORDER BY answer_id DESC LIMIT 1", (name,)).fetchone()
            if last is None:
                raise Denied(409, "Nothing to undo.")
            conn.execute("UPDATE pair_answers SET undone = 1 WHERE answer_id = ?", (last["answer_id"],))
            return JSONResponse(pair_payload(conn, name))

    # --- a crowd study: the study link, consent, instructions -------------------------------------

    def study_link(request: Request):
        query = request.query_params
        if crowd.is_preview(query):
            return message_page("This is a preview. Accept the task on your platform to start: you will judge "
                                f"{study.batch_size} images, one at a time.", 200)
        try:
            found = crowd.participant(query, study.participant_param)
        except InputError as err:
            return message_page(str(err), 400)
        if found is None:
            names = [n for _, n in crowd.PLATFORMS] + ([study.participant_param] if study.participant_param else [])
            return message_page("This study link lacks your participant id; open the study from your platform "
                                f"(the link carries {' or '.join(names)}).", 400)
        name, token = crowd.join(db, *found)
        with storage.connect(db, write=False) as conn:
            consented = crowd.state(conn, name)["consented"]
        return signed_in(request, token, "/instructions" if consented else "/consent")

    def worker(request: Request, write: bool = False) -> str:
        name = annotator(request, write)
        if not name.startswith(crowd.WORKER_PREFIX):
            raise Denied(403, "This page is for crowd workers who came through the study link.")
        return name

    def consent_page(request: Request):
        try:
            worker(request)
        except Denied as err:
            return message_page(err.message, err.status)
        paragraphs = "".join(f"<p>{html.escape(p.strip())}</p>" for p in study.consent.split("\n\n") if p.strip())
        return HTMLResponse(template(request, "consent.html", CSRF=storage.csrf_token(db, request.cookies[COOKIE]),
                                     CONSENT=paragraphs), headers={"Cache-Control": "no-store"})

    def give_consent(request: Request):
        name = worker(request, write=True)
        if crowd.consent(db, name, study) == 0:
            raise Denied(409, "This study has all the answers it needs; thank you. Please return it on your platform.")
        return JSONResponse({"next": prefix(request) + "/instructions"})

    def instructions(request: Request):
        try:
            name = worker(request)
        except Denied as err:
            return message_page(err.message, err.status)
        with storage.connect(db, write=False) as conn:
            if not crowd.state(conn, name)["consented"]:
                return RedirectResponse(prefix(request) + "/consent", status_code=303)
        return HTMLResponse(template(request, "instructions.html", N=str(study.batch_size),
                                     TASK=(PAIR_TASK if pair_mode else IMAGE_TASK).format(N=study.batch_size), EXAMPLES=examples_html(request)),
                            headers={"Cache-Control": "no-store"})

    def example_image(request: Request):
        worker(request)
        index = request.path_params["index"]
        if not 0 <= index < len(study.examples):
            raise Denied(404, "No such example.")
        return Response(blind_png(study.examples[index]["image"]), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    def examples_html(request: Request) -> str:
        shown = study.examples[:2] if study.examples else DEFAULT_EXAMPLES
        parts = []
        for i, ex in enumerate(shown):
            figure = (f"<img src='{prefix(request)}/example/{i}' alt='example image {i + 1}'>" if "image" in ex
                      else f"<p class='picture'><b>The image shows:</b> {html.escape(ex['picture'])}</p>")
            parts.append(f"<section class='example'><h3>Example {i + 1}</h3>{figure}<p>Prompt: <q>{html.escape(ex['prompt'])}"
                         f"</q></p><p><b>Answer: {ex['label'].title()}.</b> {html.escape(ex['explanation'])}</p></section>")
        return "".join(parts)

    routes = [
        Route("/", landing), Route("/login", login), Route("/annotate", page),
        Route("/api/next", api_next), Route("/api/answer", answer, methods=["POST"]), Route("/api/undo", undo, methods=["POST"]),
        Route("/img/{image_id:str}", image), Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/api/pairs/next", api_next_pair), Route("/api/pairs/answer", answer_pair, methods=["POST"]),
        Route("/api/pairs/undo", undo_pair, methods=["POST"]),
    ]
    if study is not None:
        routes += [Route("/study", study_link), Route("/consent", consent_page), Route("/instructions", instructions),
                   Route("/api/consent", give_consent, methods=["POST"]), Route("/example/{index:int}", example_image)]
    return Starlette(routes=routes, exception_handlers={Denied: denied})


IMAGE_TASK = ("You will see {N} images, one at a time, each with the prompt it was made from. For each, decide: "
              "<b>does the image correctly depict the prompt?</b> Press <b>Accept</b> (key <kbd>A</kbd>) if it does and "
              "<b>Reject</b> (key <kbd>R</kbd>) if it does not; you may tick what is wrong (keys 1-7) and write a comment.")
PAIR_TASK = ("You will see {N} pairs of images, two at a time, made from the same prompt. For each pair, decide: "
             "<b>which image depicts the prompt better?</b> Press <b>Left</b> (key <kbd>1</kbd> or &larr;) or "
             "<b>Right</b> (key <kbd>2</kbd> or &rarr;); if neither is better, <b>Both good</b> (key <kbd>G</kbd>) or "
             "<b>Both bad</b> (key <kbd>B</kbd>).")
# Worked examples in words, for a study without annotate.examples_file.
DEFAULT_EXAMPLES = (
    {"prompt": "a wolf chasing an elk", "picture": "a grey wolf running, close behind a fleeing elk, across snow.",
     "label": "accept", "explanation": "Both animals are there and the wolf is the one chasing: the image shows the "
                                       "described interaction, even if the scene was not mentioned."},
    {"prompt": "a sheep attacking a boar", "picture": "a boar charging at a sheep that backs away.", "label": "reject",
     "explanation": "Both animals are there, but the roles are reversed: the boar attacks the sheep. Judge who does "
                    "what to whom, not only who is in the picture."},
)


def prefix(request: Request) -> str:
    """The app's root path behind a proxy ("" when served at the root)."""
    return request.scope.get("root_path", "").rstrip("/")


def template(request: Request, name: str, **values: str) -> str:
    """A page of static/ with its {{NAME}} placeholders filled ({{ROOT}}: the root path)."""
    html_text = (STATIC / name).read_text(encoding="utf-8").replace("{{ROOT}}", html.escape(prefix(request)))
    for key, value in values.items():
        html_text = html_text.replace("{{" + key + "}}", value)
    return html_text


def message_page(text: str, status: int) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html lang='en'><meta charset='utf-8'><title>act2i study</title>"
                        f"<p>{html.escape(text)}</p></html>", status_code=status)


def signed_in(request: Request, token: str, to: str) -> RedirectResponse:
    """A redirect that sets the login cookie: HttpOnly, SameSite, scoped to the root path, Secure over HTTPS."""
    response = RedirectResponse(prefix(request) + to, status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path=prefix(request) or "/",
                        secure=request.url.scheme == "https")
    return response


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
