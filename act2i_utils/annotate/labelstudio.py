"""Exchange with Label Studio: export the study's tasks in its import format, import its results.

The export is blind like the web app: images are copied under their opaque ids with their
metadata stripped. Point Label Studio's local-file serving at the export folder
(LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true, LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<folder>),
create a project with `labeling_config.xml`, and import `tasks.json`.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from xml.sax.saxutils import quoteattr

from ..errors import InputError
from ..fileio import write_bytes, write_json, write_text
from . import storage
from .app import blind_png


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
    db = storage.db_path(run_root)
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
        write_bytes(out / "images" / f"{image_id}.png", blind_png(Path(run_root).resolve() / path))
        tasks.append({"id": number, "data": {"image": f"{url_prefix}images/{image_id}.png", "prompt": prompt, "image_id": image_id}})
    write_json(out / "tasks.json", tasks)
    write_text(out / "labeling_config.xml", labeling_config())
    return out / "tasks.json"


def import_results(run_root: Path, path: Path) -> int:
    """Read a Label Studio JSON export into the study's answers; returns how many were stored.

    Annotators are named `ls:<email or id>`. Importing the same export again replaces, not
    duplicates, the earlier answers.
    """
    db = storage.db_path(run_root)
    if not db.is_file():
        raise InputError(f"{run_root} has no study yet; export the tasks from it first.")
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a Label Studio JSON export ({type(err).__name__}).") from None
    if not isinstance(tasks, list):
        raise InputError(f"{path}: a Label Studio JSON export is a list of tasks.")
    stored = 0
    with storage.connect(db) as conn:
        known = {r[0] for r in conn.execute("SELECT image_id FROM images")}
        for task in tasks:
            image_id = (task.get("data") or {}).get("image_id")
            if image_id not in known:
                raise InputError(f"{path}: task {task.get('id')} has image_id {image_id!r}, which this study does not have.")
            for annotation in task.get("annotations") or []:
                if annotation.get("was_cancelled"):
                    continue
                answer = _parse(annotation, path, task.get("id"))
                conn.execute("INSERT OR IGNORE INTO annotators (name, token_hash) VALUES (?, NULL)", (answer["annotator"],))
                conn.execute("UPDATE answers SET undone = 1 WHERE annotator = ? AND image_id = ? AND undone = 0",
                             (answer["annotator"], image_id))
                conn.execute("INSERT INTO answers (annotator, image_id, label, tags, comment, seconds, source) "
                             "VALUES (?, ?, ?, ?, ?, ?, 'labelstudio')",
                             (answer["annotator"], image_id, answer["label"], answer["tags"], answer["comment"], answer["seconds"]))
                stored += 1
    return stored


def _parse(annotation: dict, path: Path, task_id) -> dict:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    label, tags, comment = None, [], ""
    for result in annotation.get("result") or []:
        value = result.get("value") or {}
        if result.get("from_name") == "label":
            choice = (value.get("choices") or [None])[0]
            label = {"Accept": "accept", "Reject": "reject"}.get(choice)
        elif result.get("from_name") == "tags":
            tags = [t for t in value.get("choices") or [] if t in storage.TAGS]
        elif result.get("from_name") == "comment":
            comment = " ".join(value.get("text") or [])
    if label is None:
        raise InputError(f"{path}: task {task_id} has an annotation without an Accept or Reject choice.")
    seconds = annotation.get("lead_time")
    return {"annotator": f"ls:{who}", "label": label, "tags": ",".join(t for t in storage.TAGS if t in tags),
            "comment": comment.strip(), "seconds": float(seconds) if isinstance(seconds, (int, float)) else None}
