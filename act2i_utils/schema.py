"""Every table of the run directory, declared once: its columns, its key and one validator that
the stage writing it and every stage reading it both call.

| table | file (see `runs.RunPaths`) | one row per |
|---|---|---|
| benchmark | `benchmark.parquet` | prompt: the published AcT2I schema, plus the action's template |
| prompts | `prompts.parquet` | (id, variant, sample): the text, how it was made, its token counts |
| manifest | `images/manifest.parquet` | image (model, variant, id, seed): where it is and how it was made |
| scores | `scores.parquet` | (image, metric): a judge's value |
| detections | `detections.parquet` | box a detector kept for an agent of an image |
| annotations | `annotations.parquet` | live answer of one annotator about one image |
| annotation_plan | `annotation_plan.parquet` | image: its chance of being sent to people, and whether it was |
| ratings | `ratings.parquet` | live answer of one rater, gold included, with its gold result and the rater's exclusion |
| pairs | `pairs.parquet` | pair of images of one prompt that people and the VLM judge compare |
| pair_judgements | `pair_judgements.parquet` | (pair, judge): P(first better) in both orders, P(a better) |
| pair_answers | `pair_answers.parquet` | live answer of one person about one pair |
| acceptance | (in memory; `tables/acceptance.csv` summarises it) | image: accepted 0/1, from people or a judge |

The benchmark table keeps the published AcT2I schema, so the official prompt file loads as is:
`id, base_prompt, animal1, animal2, action, rarity_label, emotional_valence, spatial_topology,
temporal_extent, emotional_prompt, spatial_prompt, temporal_prompt` (all text; labels and
enriched prompts may be empty). A built benchmark adds `action_key` and `action_template`
("{a} carrying {b} on its back"), so later stages never go back to the taxonomy files.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .config import SAFE_NAME_RULE, is_safe_name
from .errors import InputError
from .fileio import atomic_path, write_parquet

BENCHMARK_COLUMNS = [
    "id", "base_prompt", "animal1", "animal2", "action", "rarity_label", "emotional_valence",
    "spatial_topology", "temporal_extent", "emotional_prompt", "spatial_prompt", "temporal_prompt",
]
# act2i's own columns; imports may lack them. Counts are as written ("four", "3", "a"), attributes
# ";"-separated ("small;red"), scene objects ";"-separated ("a brown guitar"); `agents_note` says
# why a row is flagged agents_not_found.
AGENT_COLUMNS = ["animal1_count", "animal1_attributes", "animal2_count", "animal2_attributes", "scene_objects",
                 "agents_note"]
# `reciprocal`: the action reads the same both ways (true/false; from the actions data, else words.reciprocal).
BENCHMARK_EXTRA = ["action_key", "action_template", "reciprocal", "flags", *AGENT_COLUMNS, "metadata"]
LABELS = {
    "rarity_label": ("common", "plausible", "rare"),
    "emotional_valence": ("aggressive", "defensive", "affiliative", "communicative"),
    "spatial_topology": ("pursuit", "physical contact", "distant interaction"),
    "temporal_extent": ("instantaneous", "extended"),
}
# The authors' code release: a JSON list with these keys (phrase = base prompt).
CODE_RELEASE_COLUMNS = {
    "id": "id", "animal1": "animal1", "animal2": "animal2", "action": "action", "phrase": "base_prompt",
    "spatial": "spatial_prompt", "temporal": "temporal_prompt", "emotional": "emotional_prompt",
}
FORMATS = (".parquet", ".jsonl", ".json", ".csv", ".tsv", ".txt")
# Other benchmarks' names for our columns, in order of preference (any case): the first one a file has is used.
ALIASES = {
    "base_prompt": ("base_prompt", "prompt", "prompts", "text", "caption", "phrase", "sentence", "description"),
    "id": ("id", "prompt_id", "item_id", "uid"),
    "animal1": ("animal1", "agent1"),
    "animal2": ("animal2", "agent2"),
}
METADATA = "metadata"  # the fields of an imported row that are not columns of ours, as one JSON object


def read_benchmark(path: str | Path) -> pd.DataFrame:
    """Load a prompt set from any supported file and return it in the published schema.

    Accepts our exports and the published AcT2I set (Parquet, JSON lines, CSV), the authors'
    code-release JSON list (`phrase`, `spatial`, `temporal`, `emotional`), other benchmarks'
    files: a JSON lines file, a JSON list or a JSON object of objects (its keys become ids) with a
    prompt under any name of `ALIASES` ("prompt", "text", "caption", ...), the same in CSV or TSV,
    and a plain text file with one prompt per line (blank lines and lines starting with "#" are
    skipped). Fields that are not ours are kept, as JSON, in the `metadata` column. Missing ids
    become `p0001`, `p0002`, ... in row order. Bad input stops with one sentence naming the file,
    the row (counted from 1, header excluded) and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; give the path of a prompt set ({', '.join(FORMATS)}).")
    frame = _read_any(path)
    if "phrase" in frame.columns and "base_prompt" not in frame.columns:
        frame = frame.rename(columns=CODE_RELEASE_COLUMNS)
    try:
        frame = _with_our_names(frame)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None
    return validate_benchmark(frame, path)


def _with_our_names(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns renamed to ours (`ALIASES`, any case); the rest of each row in `metadata`."""
    ours = set(BENCHMARK_COLUMNS) | set(BENCHMARK_EXTRA)
    lower = {str(c).strip().lower(): c for c in reversed(list(frame.columns))}
    renames = {}
    for column, names in ALIASES.items():
        if column in frame.columns:
            continue
        found = next((lower[n] for n in names if n in lower and lower[n] not in ours and lower[n] not in renames), None)
        if found is not None:
            renames[found] = column
    frame = frame.rename(columns=renames)
    frame.attrs["names"] = {ours: str(theirs) for theirs, ours in renames.items()}  # for messages: the file's names
    if "base_prompt" not in frame.columns:
        raise InputError(f"no prompt column (found: {', '.join(map(str, frame.columns)) or 'none'}); name it "
                         f"{' or '.join(ALIASES['base_prompt'][:2])}, or any of {', '.join(ALIASES['base_prompt'][2:])}.")
    others = [c for c in frame.columns if c not in ours]
    if others and METADATA not in frame.columns:
        records = frame[others].to_dict("records")
        frame = frame.drop(columns=others)
        frame[METADATA] = [_metadata(r) for r in records]
    return frame


def _metadata(record: dict) -> str | None:
    kept = {str(k): v for k, v in record.items() if _text(v) is not None or isinstance(v, (list, dict, bool, int))}
    return json.dumps(kept, ensure_ascii=False, default=str, sort_keys=True) if kept else None


def _read_any(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False)
        if suffix == ".tsv":  # tab-separated files quote nothing: a prompt may hold quotes (PartiPrompts)
            return pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False, sep="\t", quoting=csv.QUOTE_NONE)
        if suffix in (".jsonl", ".json"):
            return _read_json(path)
        if suffix == ".txt":
            lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
            return pd.DataFrame({"base_prompt": [line for line in lines if line and not line.startswith("#")]})
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - a corrupt file becomes one sentence
        raise InputError(f"{path}: could not be read as {suffix[1:]} ({type(err).__name__}: {_first_line(err)}).") from None
    raise InputError(f"{path}: unknown prompt-set format '{suffix or path.name}'; use .parquet, .jsonl, .json (a list "
                     "or object of objects), .csv, .tsv or .txt (one prompt per line).")


def _read_json(path: Path) -> pd.DataFrame:
    text = path.read_text(encoding="utf-8-sig")
    stripped = text.lstrip()
    whole = stripped.startswith("[") or (path.suffix.lower() == ".json" and stripped.startswith("{")
                                         and not _one_object_per_line(stripped))
    if whole:
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: not valid JSON at line {err.lineno}, column {err.colno} ({err.msg}).") from None
        if isinstance(records, dict):
            records = _records_of_object(records, path)
    else:
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise InputError(f"{path}: line {number} is not valid JSON ({err.msg}); each line must hold one object.") from None
    if not isinstance(records, list):
        raise InputError(f"{path}: holds a {type(records).__name__}, not a list of rows.")
    if not records:
        raise InputError(f"{path}: the file holds no rows.")
    for i, record in enumerate(records, 1):
        if isinstance(record, str):
            records[i - 1] = record = {"base_prompt": record}  # a JSON list of prompts
        if not isinstance(record, dict):
            raise InputError(f"{path}: row {i} is {type(record).__name__}, not an object with fields such as base_prompt.")
    return pd.DataFrame.from_records(records)


def _one_object_per_line(text: str) -> bool:
    """JSON lines that begin with "{": more than one line, each a whole object."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].rstrip().endswith("}"):
        return False
    try:
        return isinstance(json.loads(lines[0]), dict)
    except json.JSONDecodeError:
        return False


def _records_of_object(data: dict, path: Path) -> list[dict]:
    """{"0": {"prompt": ...}, ...} (keys become ids), one list of rows under a key ({"data": [...]}), or
    one row ({"prompt": ...})."""
    lists = [v for v in data.values() if isinstance(v, list)]
    if len(data) == 1 and lists:
        return lists[0]
    if any(str(k).strip().lower() in ALIASES["base_prompt"] for k in data):
        return [data]
    if data and all(isinstance(v, dict) for v in data.values()):
        return [{"id": str(k), **v} if "id" not in v else v for k, v in data.items()]
    if data and all(isinstance(v, str) for v in data.values()):
        return [{"id": str(k), "base_prompt": v} for k, v in data.items()]
    raise InputError(f"{path}: a JSON object must map ids to rows ({{\"p1\": {{\"prompt\": ...}}}}) or hold one list "
                     "of rows; this one does neither.")


def load_benchmark(path: Path) -> pd.DataFrame:
    """A run's benchmark.parquet with None for every missing value (see `with_none`)."""
    return with_none(pd.read_parquet(path))


def with_none(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as objects with None where a value is missing: pandas 3 reads text as `str` with NaN
    for a missing value, and NaN is truthy (`if row["animal1"]:` would take it for an agent)."""
    return frame.astype(object).where(frame.notna(), None)


def validate_benchmark(frame: pd.DataFrame, source: str | Path = "benchmark") -> pd.DataFrame:
    """Check a table against the published schema and return a clean copy (text columns, schema order)."""
    if "base_prompt" not in frame.columns:
        raise InputError(
            f"{source}: no 'base_prompt' column (found: {', '.join(map(str, frame.columns)) or 'none'}); "
            "a prompt set needs at least base_prompt (or phrase, as in the authors' code release)."
        )
    if len(frame) == 0:
        raise InputError(f"{source}: the prompt set has no rows.")
    names = frame.attrs.get("names", {})
    columns = {}
    for column in BENCHMARK_COLUMNS + [c for c in BENCHMARK_EXTRA if c in frame.columns]:
        values = frame[column].tolist() if column in frame.columns else [None] * len(frame)
        columns[column] = pd.Series([_text(v) for v in values], dtype=object)  # object keeps None as None
    if "reciprocal" in columns:
        columns["reciprocal"] = _flags(frame["reciprocal"].tolist(), source, names.get("reciprocal", "reciprocal"))
    out = pd.DataFrame(columns)
    if out["id"].isna().all():
        out["id"] = pd.Series([f"p{i:04d}" for i in range(1, len(out) + 1)], dtype=object)
    for i, row in enumerate(out.itertuples(index=False), 1):
        if row.id is None:
            raise InputError(f"{source}: row {i} has an empty 'id'; give every row an id or leave the column out.")
        if not is_safe_name(row.id):
            raise InputError(f"{source}: row {i} has 'id' {row.id!r}, which becomes part of image file names and "
                             f"must be {SAFE_NAME_RULE}; rename it.")
        if row.base_prompt is None:
            raise InputError(f"{source}: row {i} (id {row.id}) has an empty '{names.get('base_prompt', 'base_prompt')}'.")
        if isinstance(frame["base_prompt"].iat[i - 1], (dict, list)):
            raise InputError(f"{source}: row {i} (id {row.id}) has a '{names.get('base_prompt', 'base_prompt')}' that is "
                             f"not text but a JSON {type(frame['base_prompt'].iat[i - 1]).__name__}; give the prompt as text.")
        for column, allowed in LABELS.items():
            value = getattr(row, column)
            if value is not None and value not in allowed and _label(value) in allowed:
                value = _label(value)  # "Physical Contact", "physical_contact" -> "physical contact"
                out.iat[i - 1, out.columns.get_loc(column)] = value
            if value is not None and value not in allowed:
                raise InputError(
                    f"{source}: row {i} (id {row.id}) has {column} '{value}'; expected one of {', '.join(allowed)} or empty."
                )
    dupes = out["id"][out["id"].duplicated(keep=False)]
    if len(dupes):
        first = dupes.iloc[0]
        rows = [str(i + 1) for i in dupes.index[dupes == first]]
        raise InputError(f"{source}: duplicate id '{first}' in rows {', '.join(rows)}; ids must be unique.")
    return out


TRUE, FALSE = {"true", "yes", "1", "y", "t"}, {"false", "no", "0", "n", "f"}


def _flags(values: list, source, name: str) -> pd.Series:
    """A true/false column (bool; object with None where some rows leave it empty)."""
    out = []
    for i, value in enumerate(values, 1):
        text = None if isinstance(value, bool) else _text(value)
        if isinstance(value, bool) or text is None:
            out.append(value if isinstance(value, bool) else None)
        elif text.lower() in TRUE | FALSE:
            out.append(text.lower() in TRUE)
        else:
            raise InputError(f"{source}: row {i} has {name} {value!r}; expected true or false (or empty).")
    return pd.Series(out, dtype=bool if None not in out else object)


def _label(value: str) -> str:
    return " ".join(value.lower().replace("_", " ").replace("-", " ").split())


def _text(value) -> str | None:
    """Normalise a cell to stripped text, or None when empty or missing."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    text = str(value).strip()
    return text or None


def export_benchmark(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the benchmark as Parquet, JSON lines or CSV (by extension), atomically."""
    path = Path(path)
    frame = validate_benchmark(frame, path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".jsonl", ".csv"):
        raise InputError(f"{path}: cannot export to '{suffix}'; use .parquet, .jsonl or .csv.")
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif suffix == ".jsonl":
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_csv(tmp, index=False)
    return path


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(err).__name__


# --- the other tables of the run directory -------------------------------------------------

KEY = ["model", "variant", "id", "seed"]  # one image


@dataclass(frozen=True)
class Table:
    """A run-directory table: its columns in order, the columns that identify a row, and
    the prefix of optional columns it may carry beyond them ("" keeps any)."""

    name: str
    columns: list[str]
    key: list[str] = field(default_factory=list)
    extra_prefix: str | None = None

    def validate(self, frame: pd.DataFrame, source: str | Path | None = None) -> pd.DataFrame:
        """The frame with its columns in schema order, or one sentence naming what is wrong."""
        where = source or f"the {self.name} table"
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise InputError(f"{where}: missing column(s) {', '.join(missing)} of the {self.name} table; "
                             f"expected {', '.join(self.columns)}.")
        if self.key and len(frame):
            dupes = frame.duplicated(self.key, keep=False)
            if dupes.any():
                first = frame.loc[dupes, self.key].iloc[0].tolist()
                raise InputError(f"{where}: the {self.name} row {dict(zip(self.key, first))} appears more than once.")
        extra = [c for c in frame.columns
                 if c not in self.columns and self.extra_prefix is not None and str(c).startswith(self.extra_prefix)]
        columns = self.columns + extra
        return frame if list(frame.columns) == columns else frame[columns]

    def empty(self) -> pd.DataFrame:
        return pd.DataFrame(columns=self.columns)

    def read(self, path: Path) -> pd.DataFrame:
        """Read and validate the table at `path` (a Parquet file)."""
        try:
            frame = pd.read_parquet(path)
        except FileNotFoundError:
            raise
        except Exception as err:  # noqa: BLE001 - a damaged file becomes one sentence
            raise InputError(f"{path}: could not be read as Parquet ({type(err).__name__}: {_first_line(err)}); "
                             "rerun the stage that writes it.") from None
        return self.validate(frame, path)

    def write(self, path: Path, frame: pd.DataFrame) -> pd.DataFrame:
        """Validate `frame` and write it to `path` atomically; returns what was written."""
        frame = self.validate(frame, path)
        write_parquet(path, frame)
        return frame


TOKENS_PREFIX = "tokens: "  # prompts.parquet: one column per text encoder, "tokens: <encoder> (max <limit>)"

PROMPTS = Table(
    "prompts",
    ["id", "variant", "sample", "text", "backend", "model", "dimension_hash", "flags", "attempts", "raw"],
    key=["id", "variant", "sample"],
    extra_prefix=TOKENS_PREFIX,
)
MANIFEST = Table(
    "manifest",
    KEY + ["prompt", "prompt_hash", "path", "width", "height", "steps", "guidance", "model_id", "dtype", "seconds",
           "source", "versions", "created", "settings", "image_hash"],
    key=KEY,
)
SCORES = Table("scores", KEY + ["metric", "value", "judge"], key=KEY + ["metric"])
DETECTIONS = Table("detections", KEY + ["agent", "score", "x0", "y0", "x1", "y1"])
ANNOTATIONS = Table(
    "annotations",
    ["annotator", "image_id", "model", "variant", "id", "seed", "label", "tags", "comment", "seconds", "source",
     "created"],
    key=["annotator", "image_id"],
)
# One row per live answer of a rater, gold images included: the per-rater export a paper can publish
# (the annotator is an anonymous name; for a gold image, model is "(gold)" and id the gold id).
RATINGS = Table(
    "ratings",
    ["annotator", "model", "variant", "id", "seed", "label", "tags", "seconds", "gold_expected", "gold_correct",
     "excluded", "created"],
)
# Side-by-side comparisons (issue 27). A pair: two images of one prompt that differ in the system
# compared (`by`: model or variant; a and b, a before b in the profile's order) and agree in the rest,
# the same seed where both have it; `left` says which of the two people see on the left.
PAIRS = Table(
    "pairs",
    ["pair_id", "id", "by", "a", "b", "a_model", "a_variant", "a_seed", "b_model", "b_variant", "b_seed", "left"],
    key=["pair_id"],
)
# The VLM judge on a pair, asked in both orders: P(the first image is better) with a first and with b
# first, and p_a = P(a better) = (p_first_ab + 1 - p_first_ba) / 2, which cancels a bias for a position.
PAIR_JUDGEMENTS = Table("pair_judgements", ["pair_id", "judge", "p_first_ab", "p_first_ba", "p_a"], key=["pair_id", "judge"])
# People on a pair: one row per live answer; choice left / right / both_good / both_bad, and what it
# means for a and b (outcome_a: 1 a better, 0 b better, 0.5 a tie).
PAIR_ANSWERS = Table(
    "pair_answers",
    ["annotator", "pair_id", "id", "a", "b", "left", "choice", "outcome_a", "seconds", "gold_expected", "gold_correct",
     "excluded", "created"],
)
ANNOTATION_PLAN = Table("annotation_plan", KEY + ["stratum", "inclusion_prob", "selected"], key=KEY)
ACCEPTANCE = Table("acceptance", KEY + ["accepted"], key=KEY, extra_prefix="")  # people add accept_share, annotators
# The select stage (issue 21). Candidates: every image it chose among, with the selection judge's
# value and whether its seed was a selection seed or held out. Selection: one row per image of a
# selected variant (`selected`, `selected_k<k>`, `selected_<policy>`): what was chosen, by which
# judge and policy, on which seeds, and whether the image's own outcome was unseen when choosing
# (`honest`: a held-out seed, or a choice cross-fitted over prompts), which decides who may evaluate it.
SELECT_CANDIDATES = Table(
    "select_candidates",
    ["model", "id", "variant", "dimension", "sample", "seed", "role", "metric", "judge", "value", "path"],
    key=["model", "id", "variant", "seed"],
)
SELECTION = Table(
    "selection",
    KEY + ["policy", "budget", "metric", "judge", "chosen_variant", "chosen_sample", "chosen_seed", "chosen_path", "score",
           "runner_up", "candidates", "seeds_seen", "honest", "fold", "rule", "reason"],
    key=KEY,
)
SELECT_COST_CURVE = Table(
    "select_cost_curve",
    ["model", "mode", "rewrites", "seeds", "candidates", "prompts", "value", "reference", "gain", "low", "high", "ci",
     "selected_by", "evaluated_by", "note"],
    key=["model", "mode", "rewrites", "seeds"],
)
SELECT_REFINE = Table(
    "select_refine",
    ["model", "id", "variant", "dimension", "seed", "best_score", "failed_atoms", "feedback", "text", "backend"],
    key=["model", "id", "variant"],
)


def token_column(encoder: str, limit: int) -> str:
    """The prompts-table column holding token counts under one text encoder."""
    return f"{TOKENS_PREFIX}{encoder} (max {limit})"


def parse_token_column(column: str) -> tuple[str, int]:
    """(encoder label, token limit) from a `token_column` name."""
    body = column[len(TOKENS_PREFIX):]
    label, _, limit = body.rpartition(" (max ")
    return label, int(limit.rstrip(")"))
