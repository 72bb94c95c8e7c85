"""Exchange with Label Studio: export the study's tasks in its import format, import its results.

The export is blind like the web app: images are copied under their opaque ids, with their
metadata stripped and at one size (`blind.blind_png`). Point Label Studio's local-file serving
at the export folder (LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true,
LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<folder>), create a project with `labeling_config.xml`,
and import `tasks.json`. Imports refuse a malformed export as a whole, naming the task.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from xml.sax.saxutils import quoteattr

from ..errors import InputError
from ..fileio import write_bytes, write_json, write_text
from ..runs import RunPaths
from . import storage
from .blind import blind_png


def labeling_config() -> str:
    tag_choices = "\n".join(f"    <Choice value={quoteattr(t)}/>" for t in storage.TAGS)
    return f"""<View>
  <Header value="Does this image correctly depict: $prompt"/>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image" choice="single" required="true">
    <Choice value="Accept"/>
    <Choice value="Reject"/>
  </Choices>
  <Choices name="tags" toName="image" choice="multiple">
{tag_choices}
  </Choices>
  <TextArea name="comment" toName="image" placeholder="Comment (optional)"/>
</View>
"""


def export_tasks(run_root: Path, out: Path, url_prefix: str = "/data/local-files/?d=") -> Path:
    """Write tasks.json, labeling_config.xml and the blind images into `out`."""
    paths = RunPaths(run_root)
    db = paths.annotations_db_path
    if not db.is_file():
        raise InputError(f"{run_root} has no study yet; run `act2i annotate serve` or `add-annotator` first.")
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT image_id, path, prompt FROM images ORDER BY image_id").fetchall()
    finally:
        conn.close()
    out = Path(out)
    tasks = []
    for number, (image_id, path, prompt) in enumerate(rows, 1):
        write_bytes(out / "images" / f"{image_id}.png", blind_png(paths.root / path))
        tasks.append({"id": number, "data": {"image": f"{url_prefix}images/{image_id}.png", "prompt": prompt, "image_id": image_id}})
    write_json(out / "tasks.json", tasks)
    write_text(out / "labeling_config.xml", labeling_config())
    return out / "tasks.json"


AS_JSON = "export the project as JSON, not JSON-MIN or CSV (Export, then JSON: tasks with their annotations)"


def import_results(run_root: Path, path: Path) -> int:
    """Read a Label Studio JSON export into the study's answers; returns how many were stored.

    Annotators are named `ls:<email or id>`; an annotation without `completed_by` is refused
    rather than filed under a shared name, which would merge people and let one overwrite
    another. Importing the same export again replaces, not duplicates, the earlier answers.
    A malformed file is refused as a whole, naming the task.
    """
    db = RunPaths(run_root).annotations_db_path
    if not db.is_file():
        raise InputError(f"{run_root} has no study yet; export the tasks from it first.")
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a Label Studio JSON export ({type(err).__name__}); {AS_JSON}.") from None
    if not isinstance(tasks, list):
        raise InputError(f"{path}: a Label Studio JSON export is a list of tasks.")
    stored = 0
    with storage.connect(db) as conn:
        known = {r[0] for r in conn.execute("SELECT image_id FROM images")}
        for number, task in enumerate(tasks, 1):
            if not isinstance(task, dict):
                raise InputError(f"{path}: item {number} is a {type(task).__name__}, not a Label Studio task object.")
            where = f"{path}: task {task.get('id', f'#{number}')}"
            if "data" not in task and "annotations" not in task and "image_id" in task:
                raise InputError(f"{where} is a flat row of a JSON-MIN export, which leaves out who answered; {AS_JSON}.")
            if not isinstance(task.get("data"), dict):
                raise InputError(f"{where} has no data object.")
            image_id = task["data"].get("image_id")
            if not isinstance(image_id, str) or image_id not in known:
                raise InputError(f"{where} has image_id {image_id!r}, which this study does not have.")
            annotations = task.get("annotations") or []
            if not isinstance(annotations, list):
                raise InputError(f"{where} has annotations that are not a list.")
            for annotation in annotations:
                if not isinstance(annotation, dict):
                    raise InputError(f"{where} has an annotation that is not an object.")
                if annotation.get("was_cancelled"):
                    continue
                answer = _parse(annotation, where)
                conn.execute("INSERT OR IGNORE INTO annotators (name, token_hash) VALUES (?, NULL)", (answer["annotator"],))
                conn.execute("UPDATE answers SET undone = 1 WHERE annotator = ? AND image_id = ? AND undone = 0",
                             (answer["annotator"], image_id))
                conn.execute("INSERT INTO answers (annotator, image_id, label, tags, comment, seconds, source) "
                             "VALUES (?, ?, ?, ?, ?, ?, 'labelstudio')",
                             (answer["annotator"], image_id, answer["label"], answer["tags"], answer["comment"], answer["seconds"]))
                stored += 1
    return stored


def _parse(annotation: dict, where: str) -> dict:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    if not isinstance(who, (str, int)) or isinstance(who, bool) or who == "":
        raise InputError(f"{where} has an annotation without completed_by (who made it); export the project "
                         "from Label Studio with its annotators, so each answer belongs to one person.")
    results = annotation.get("result") or []
    if not isinstance(results, list) or not all(isinstance(r, dict) and isinstance(r.get("value") or {}, dict) for r in results):
        raise InputError(f"{where} has an annotation whose result is not a list of Label Studio result objects.")
    label, tags, comment = None, [], ""
    for result in results:
        value = result.get("value") or {}
        if result.get("from_name") == "label":
            choice = (_strings(value.get("choices"), where) or [None])[0]
            label = {"Accept": "accept", "Reject": "reject"}.get(choice)
        elif result.get("from_name") == "tags":
            tags = [t for t in _strings(value.get("choices"), where) if t in storage.TAGS]
        elif result.get("from_name") == "comment":
            comment = " ".join(_strings(value.get("text"), where))
    if label is None:
        raise InputError(f"{where} has an annotation without an Accept or Reject choice.")
    seconds = annotation.get("lead_time")
    return {"annotator": f"ls:{who}", "label": label, "tags": ",".join(t for t in storage.TAGS if t in tags),
            "comment": comment.strip(), "seconds": float(seconds) if isinstance(seconds, (int, float)) else None}


def _strings(values, where: str) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InputError(f"{where} has an annotation whose choices or text are not a list of strings.")
    return values
