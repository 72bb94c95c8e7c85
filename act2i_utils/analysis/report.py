"""`report.html`: one self-contained page that opens offline from any folder (every figure embedded
as a data URI; no script, font or style from elsewhere).

In order: a table of contents; acceptance and gains; breakdowns by label; paired tests (variant
against variant, model against model) and the GEE model; failure modes; automatic judges against
people; prompt linguistics; the qualitative grids; the benchmark; the selection stage; any other
figure in the run's `figures/` folder (every PNG there appears, including those other stages
wrote); notes; provenance. Every figure has a caption saying what it shows and its source
(`figures.caption`), never its file name alone.

Every number on the page comes with its interval ("48.0 % [39.2 %, 57.1 %]") or is a count (the
columns images, prompts, pairs); p-values print as "< 0.001" below a thousandth, never as 0.000.
The linguistic tables describe the whole prompt set (class "descriptive", with its prompts column):
no sampling interval. Provenance shows the analyze stage finished: the report is the stage's last
step (`final_provenance`).
"""

from __future__ import annotations

import base64
import copy
import html
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import figures as fg

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
h3 { font-size: 0.95rem; margin-top: 1.2rem; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: right; } th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; } td:nth-child(-n+3) { white-space: nowrap; }
.warning { background: #fdecea; color: #8a1c0f; padding: 0.6rem 0.8rem; border-radius: 0.3rem; font-weight: 600; }
.source { color: #444; font-style: italic; } .caption { color: #555; font-size: 0.8rem; }
nav.toc { background: #f7f7f7; padding: 0.6rem 1rem; border-radius: 0.3rem; font-size: 0.9rem; }
nav.toc ol { margin: 0.3rem 0; }
figure { margin: 1.2rem 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.8rem; color: #444; max-width: 60rem; }
details { margin: 0.4rem 0; } summary { cursor: pointer; font-size: 0.9rem; }
pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; font-size: 0.75rem; }
"""

COUNT_COLUMNS = ("images", "prompts", "pairs", "prompt rows")  # columns holding an n, not an estimate
RANDOM_WEIGHTS = "Random-weight models (smoke profile): not a result."


def _finite(x) -> bool:
    return isinstance(x, numbers.Real) and math.isfinite(x)


def p_value(p) -> str:
    """'< 0.001' below a thousandth, else three decimals; 'n/a' when there is no test."""
    if not _finite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def estimate(value, low, high, kind: str = "number") -> str:
    """'value [low, high]' in the given format: "percent", "signed percent", "ratio" or "number";
    an infinite upper limit prints as "unbounded"."""
    formats = {"percent": "{:.1%}", "signed percent": "{:+.1%}", "ratio": "{:#.3g}", "number": "{:.3f}"}
    fmt = formats[kind]

    def one(v) -> str:
        if isinstance(v, numbers.Real) and math.isinf(v):
            return "unbounded" if v > 0 else "-unbounded"
        return fmt.format(v) if _finite(v) else "n/a"

    if not _finite(value):
        return "n/a"
    return f"{one(value)} [{one(low)}, {one(high)}]"


def in_paper_order(table: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Rows sorted by `columns` in their order of first appearance, except `variant`, which takes
    the paper's order (Original, Spatial, Emotional, Temporal, then others)."""
    if table.empty:
        return table
    rank = {c: {v: i for i, v in enumerate(fg.variant_order(table[c]) if c == "variant" else dict.fromkeys(table[c]))}
            for c in columns}
    return table.sort_values(list(columns), key=lambda s: s.map(rank[s.name]), kind="stable", ignore_index=True)


def _titles(values: pd.Series) -> pd.Series:
    return values.map(fg.variant_title)


def _estimates(table: pd.DataFrame, value: str, low: str, high: str, kind: str) -> list[str]:
    return [estimate(v, lo, hi, kind) for v, lo, hi in zip(table[value], table[low], table[high])]


# --- tables ---------------------------------------------------------------------------------------


def headline(results, confidence: float = 0.95) -> pd.DataFrame:
    """Acceptance (with interval and counts) per model and variant, and the absolute and relative gain
    over base (with intervals and, where the relative gain's interval is unusual, why)."""
    level = f"{confidence:.0%} CI"
    rates = in_paper_order(results.rates, "model", "variant")
    table = pd.DataFrame({
        "model": rates["model"], "variant": rates["variant"],
        f"acceptance ({level})": _estimates(rates, "acceptance", "ci_low", "ci_high", "percent"),
        "images": rates["images"], "prompts": rates["prompts"]})
    if len(results.gains):
        g = results.gains
        gains = pd.DataFrame({
            "model": g["model"], "variant": g["variant"],
            f"absolute gain ({level})": _estimates(g, "absolute_gain", "absolute_ci_low", "absolute_ci_high", "signed percent"),
            f"relative gain ({level})": [estimate(r, lo, hi, "signed percent") if _finite(r) else "n/a (base acceptance is 0)"
                                         for r, lo, hi in zip(g["relative_gain"], g["relative_ci_low"], g["relative_ci_high"])],
            "note": g["relative_ci_note"].fillna("") if "relative_ci_note" in g else ""})
        table = table.merge(gains, on=["model", "variant"], how="left")
        table = table.fillna({column: "" for column in gains.columns if column not in ("model", "variant")})
    return table.assign(variant=_titles(table["variant"]))


def breakdown_table(breakdown: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One `stats.breakdown` table: acceptance and relative gain over base per model, label value and
    variant, with intervals and counts."""
    level = f"{confidence:.0%} CI"
    label = str(breakdown["label"].iloc[0]).replace("_", " ") if len(breakdown) else "value"
    breakdown = in_paper_order(breakdown, "model", "value", "variant")
    return pd.DataFrame({
        "model": breakdown["model"], label: breakdown["value"], "variant": _titles(breakdown["variant"]),
        f"acceptance ({level})": _estimates(breakdown, "acceptance", "ci_low", "ci_high", "percent"),
        f"relative gain ({level})": ["" if v == "base" else estimate(r, lo, hi, "signed percent") for v, r, lo, hi in
                                     zip(breakdown["variant"], breakdown["relative_gain"], breakdown["relative_ci_low"],
                                         breakdown["relative_ci_high"])],
        "images": breakdown["images"], "prompts": breakdown["prompts"]})


def paired_table(pairs: pd.DataFrame, within: str, confidence: float = 0.95) -> pd.DataFrame:
    """Win rates with intervals, the pairs and prompts compared, and the p-values (raw and Holm)."""
    names = (lambda v: v) if within == "model" else _titles  # the compared names, or the variant they share
    a_b = _titles if within == "model" else (lambda v: v)
    return pd.DataFrame({
        within: names(pairs[within]), "a": a_b(pairs["a"]), "b": a_b(pairs["b"]),
        f"a wins among discordant pairs ({confidence:.0%} CI)": _estimates(
            pairs, "win_rate_a", "win_rate_a_ci_low", "win_rate_a_ci_high", "percent"),
        "pairs": pairs["pairs"], "prompts": pairs["prompts"],
        "p": [p_value(p) for p in pairs["p_value"]], "p (Holm)": [p_value(p) for p in pairs["p_holm"]]})


def gee_table(gee: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    return pd.DataFrame({
        "term": gee["term"], f"odds ratio ({confidence:.0%} CI)": _estimates(gee, "odds_ratio", "ci_low", "ci_high", "ratio"),
        "p": [p_value(p) for p in gee["p_value"]], "images": gee["images"], "prompts": gee["prompts"]})


def validity_table(validity: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    out = pd.DataFrame({"metric": validity["metric"]})
    for column, title in (("auroc", "AUROC"), ("spearman", "Spearman"), ("kendall", "Kendall tau-b"),
                          ("best_f1", "best F1"), ("best_f1_threshold", "at threshold"),
                          ("prompt_auroc", "prompt AUROC"), ("prompt_spearman", "prompt Spearman"),
                          ("prompt_kendall", "prompt Kendall")):
        out[f"{title} ({confidence:.0%} CI)"] = _estimates(validity, column, f"{column}_ci_low", f"{column}_ci_high", "number")
    out["images"], out["prompts"], out["prompt rows"] = validity["images"], validity["prompts"], validity["prompt_rows"]
    return out


LEADERBOARD_MEASURES = {"auroc": "AUROC", "accuracy": "accuracy", "f1": "F1", "kendall": "Kendall tau",
                        "pairwise_accuracy": "pairwise accuracy"}


def leaderboard_table(board: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """`meta.judge_leaderboard` rows, best first: each measure with its interval, and the counts."""
    board = board.sort_values(["rank", "metric"], kind="stable") if "rank" in board else board
    out = pd.DataFrame({"metric": board["metric"], "slice": board["slice"].astype(str) + ": " + board["value"].astype(str)})
    for column, title in LEADERBOARD_MEASURES.items():
        if column in board:
            out[f"{title} ({confidence:.0%} CI)"] = _estimates(board, column, f"{column}_ci_low", f"{column}_ci_high", "number")
    out["images"], out["prompts"] = board["images"], board["prompts"]
    return out


def failure_table(failures: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    failures = in_paper_order(failures, "model", "variant")
    return pd.DataFrame({
        "model": failures["model"], "variant": _titles(failures["variant"]), "mode": failures["mode"].map(fg.failure_title),
        f"share of images ({confidence:.0%} CI)": _estimates(failures, "share", "ci_low", "ci_high", "percent"),
        f"change against base ({confidence:.0%} CI)": [
            estimate(c, lo, hi, "signed percent") if _finite(c) else "" for c, lo, hi in
            zip(failures["change_vs_base"], failures["change_vs_base_ci_low"], failures["change_vs_base_ci_high"])],
        "images": failures["images"], "prompts": failures["prompts"]})


def length_table(lengths: pd.DataFrame) -> pd.DataFrame:
    """`linguistics.length_table` for reading: the whole prompt set described (no sampling interval)."""
    lengths = in_paper_order(lengths, "variant")
    out = pd.DataFrame({"variant": lengths["variant"].map(fg.variant_title), "prompts": lengths["prompts"],
                        "mean words": lengths["mean_words"].map("{:.1f}".format)})
    for column in lengths.columns:
        if str(column).startswith("tokens: "):
            out[f"mean {column}"] = lengths[column].map("{:.1f}".format)
        elif str(column).startswith("share over "):
            out[str(column)] = lengths[column].map("{:.0%}".format)
    out["type-token ratio (pooled)"] = lengths["type_token_ratio"].map("{:.2f}".format)
    out["type-token ratio (per prompt, mean)"] = lengths["mean_prompt_ttr"].map("{:.2f}".format)
    return out


def pos_table(profile: pd.DataFrame) -> pd.DataFrame:
    """`linguistics.pos_profile` (with its prompts) as variant x part of speech shares."""
    wide = profile.pivot_table(index="variant", columns="pos", values="share", sort=False).fillna(0.0)
    wide = wide.reindex(fg.variant_order(wide.index))
    order = list(wide.mean().sort_values(ascending=False).index)
    out = wide[order].map("{:.1%}".format).reset_index()
    out["variant"] = out["variant"].map(fg.variant_title)
    prompts = profile.drop_duplicates("variant").set_index("variant")["prompts"] if "prompts" in profile else None
    if prompts is not None:
        out.insert(1, "prompts", wide.index.map(prompts).to_numpy())
    return out


# --- the page -------------------------------------------------------------------------------------


@dataclass
class Section:
    id: str
    title: str
    parts: list[str] = field(default_factory=list)


FIGURE_SECTIONS = {  # section id -> figure names (or prefixes ending in "_") it shows, in order
    "acceptance": ("acceptance", "gain_per_dimension"),
    "labels": ("heatmap_", "gainmap_"),
    "paired": ("winrate_variants_", "winrate_models_"),
    "failures": ("failure_modes_", "failure_examples_"),
    "judges": ("metric_validity", "judge_leaderboard"),
    "pairwise": ("ranking", "pairwise_winrate_"),
    "prompts": ("prompt_lengths", "wordclouds"),
    "images": ("qualitative_",),
    "benchmark": ("benchmark_labels",),
    "selection": ("selection_",),
}
SECTION_TITLES = {"acceptance": "Acceptance and gains", "labels": "By label", "paired": "Paired comparisons",
                  "failures": "Failure modes", "judges": "Automatic judges against people",
                  "pairwise": "Side-by-side rankings",
                  "prompts": "Prompt linguistics", "images": "Images", "benchmark": "Benchmark",
                  "selection": "Selection", "other": "Other figures", "notes": "Notes", "provenance": "Provenance"}


def figure_files(run, results) -> dict[str, Path]:
    """Every figure of the run: the stage's, then any other PNG in the run's figures folder."""
    files = {name: Path(path) for name, path in results.figures.items() if Path(path).is_file()}
    folder = Path(run.figures)
    for path in sorted(folder.glob("*.png")) if folder.is_dir() else []:
        files.setdefault(path.stem, path)
    return files


def _section_of(name: str) -> str:
    for section, keys in FIGURE_SECTIONS.items():
        if any(name == k or (k.endswith("_") and name.startswith(k)) for k in keys):
            return section
    return "other"


def _order_key(name: str, section: str) -> int:
    keys = FIGURE_SECTIONS.get(section, ())
    return next((i for i, k in enumerate(keys) if name == k or (k.endswith("_") and name.startswith(k))), len(keys))


def _table(table: pd.DataFrame, caption: str = "", descriptive: bool = False, random_weights: bool = False) -> str:
    classes = "descriptive" if descriptive else None
    parts = [table.to_html(index=False, escape=True, na_rep="n/a", classes=classes, border=0)]
    text = " ".join(t for t in (caption, RANDOM_WEIGHTS if random_weights else "") if t)
    if text:
        parts.append(f"<p class='caption'>{html.escape(text)}</p>")
    return "\n".join(parts)


FOLD_ROWS = 24  # a longer table is folded (click to open) so the figures stay near their section's top


def _shown(title: str, table: pd.DataFrame, body: str) -> str:
    """`body` (the table's HTML) as is, or folded under `title` when the table is long."""
    return body if len(table) <= FOLD_ROWS else _details(f"{title} ({len(table)} rows)", body)


def _details(summary: str, body: str, open_: bool = False) -> str:
    return f"<details{' open' if open_ else ''}><summary>{html.escape(summary)}</summary>\n{body}\n</details>"


def _figure(name: str, path: Path, text: str, number: int, random_weights: bool) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    label = f"{text} {RANDOM_WEIGHTS}" if random_weights else text
    return (f"<figure id='figure-{html.escape(name)}' data-figure='{html.escape(name)}'>"
            f"<img alt='{html.escape(label)}' src='data:image/png;base64,{data}'>"
            f"<figcaption><b>Figure {number}.</b> {html.escape(label)}</figcaption></figure>")


def _has(tables: dict, name: str) -> bool:
    return name in tables and len(tables[name]) > 0


def _acceptance_tables(run, results, confidence: float, rw: bool) -> list[str]:
    out = [_table(headline(results, confidence),
                  f"Intervals: {confidence:.0%}, prompt bootstrap ({run.config.analyze.n_bootstrap} draws of the prompts, "
                  "each with all its images; BCa), or Clopper-Pearson with the prompts as units where a rate is at or "
                  "near 0 % or 100 %. The intervals are for the average over prompts like these.", random_weights=rw)]
    if _has(results.tables, "raters"):
        raters = results.tables["raters"]
        a = run.config.annotate
        out.append(_shown("Table: the raters", raters, _table(raters, (
            f"The raters behind the human acceptance ({len(raters)}): images judged, gold answers and errors, median "
            f"seconds per image. Excluded: more than {a.max_gold_errors} wrong gold answers (their answers are kept, "
            f"flagged, and left out of every number above); fast: a median below {a.min_seconds:g} s (flagged only). "
            "Each image is accepted by the majority of its raters who are not excluded."), descriptive=True)))
    return out


def _label_tables(t: dict, confidence: float, rw: bool) -> list[str]:
    names = [name for name in t if name.startswith("breakdown_") and len(t[name])]
    return [_details(f"Table: by {name.removeprefix('breakdown_').replace('_', ' ')}", _table(
        breakdown_table(t[name], confidence), "Each cell bootstrapped over the prompts carrying that label value; with "
        "few prompts per value the intervals are wide.", random_weights=rw), i == 0) for i, name in enumerate(names)]


def _paired_tables(t: dict, confidence: float, rw: bool) -> list[str]:
    tests = ("Exact sign-flip test of the per-prompt wins minus losses (the prompt is the unit; clustered McNemar), "
             "Holm-corrected over the table.")
    out = []
    for name, title, within in (("paired_variants", "Variant against variant", "model"),
                                ("paired_models", "Model against model", "variant")):
        if _has(t, name):
            table = paired_table(t[name], within, confidence)
            out += [f"<h3>{title}</h3>", _shown("Table: the paired tests", table, _table(table, tests, random_weights=rw))]
    if _has(t, "gee_odds_ratios"):
        out += ["<h3>Odds ratios (GEE)</h3>", _table(gee_table(t["gee_odds_ratios"], confidence), "Logistic GEE with "
                "the prompts as clusters (exchangeable correlation, robust Wald intervals).", random_weights=rw)]
    return out


def _failure_tables(t: dict, confidence: float, rw: bool) -> list[str]:
    if not _has(t, "failure_modes"):
        return []
    table = failure_table(t["failure_modes"], confidence)
    return [_shown("Table: share of images per failure mode", table, _table(
        table, "Change against base: percentage points, paired on the prompts.", random_weights=rw))]


def _judge_tables(t: dict, confidence: float, rw: bool) -> list[str]:
    out = []
    if _has(t, "metric_validity"):
        out.append(_table(validity_table(t["metric_validity"], confidence), "Percentile intervals from the prompt "
                          "bootstrap (every image of a drawn prompt, across models and variants). Prompt level: each "
                          "model, variant and prompt's images averaged.", random_weights=rw))
    if _has(t, "judge_leaderboard"):
        board = t["judge_leaderboard"]
        overall = board[board["slice"] == "all"] if "slice" in board else board
        out.append(_table(leaderboard_table(overall, confidence), "Judges ranked against people, best first "
                          "(cross-validated thresholds; prompt-bootstrap intervals).", random_weights=rw))
        if len(overall) < len(board):
            out.append(_details("Table: the leaderboard per variant and label", _table(
                leaderboard_table(board[board["slice"] != "all"], confidence), random_weights=rw)))
    return out


def _prompt_tables(t: dict) -> list[str]:
    out = []
    if _has(t, "prompt_lengths"):
        out.append(_table(length_table(t["prompt_lengths"]), "The whole prompt set described (n = its prompts): no "
                          "sampling interval. Tokens under each text encoder; share over: prompts cut at the encoder's "
                          "limit.", descriptive=True))
    if _has(t, "pos_profile"):
        out.append(_table(pos_table(t["pos_profile"]), "Share of the words per part of speech (spaCy), the whole "
                          "prompt set described: no sampling interval.", descriptive=True))
    return out


def _pairwise_tables(t: dict, confidence: float, rw: bool) -> list[str]:
    out = []
    if _has(t, "ranking"):
        shown = t["ranking"][["judged_by", "system", "strength", "ci_low", "ci_high", "pairs", "prompts",
                              "tie_weight_note"]].copy()
        shown["strength"] = _estimates(shown, "strength", "ci_low", "ci_high", "number")
        out.append(_table(shown.drop(columns=["ci_low", "ci_high"]), "Bradley-Terry strengths with ties (Davidson), "
                          f"strongest first, centred: log-odds against the average system, {confidence:.0%} "
                          "prompt-bootstrap intervals; pairs: the comparisons a system took part in.", random_weights=rw))
    if _has(t, "position_bias"):
        bias = t["position_bias"].copy()
        bias["position_bias"] = _estimates(bias, "position_bias", "ci_low", "ci_high", "number")
        bias["order_flips"] = _estimates(bias, "order_flips", "order_flips_ci_low", "order_flips_ci_high", "percent")
        out.append(_table(bias[["judge", "position_bias", "order_flips", "pairs", "prompts"]],
                          "Each judge's preference for the first image: the mean of P(first) over both orders minus "
                          "one half (0: none); order flips: how often the same position won in both orders (the "
                          "judge followed the position, not the image).", random_weights=rw))
    if _has(t, "pairwise_agreement"):
        agree = t["pairwise_agreement"].copy()
        agree["pairwise_accuracy"] = _estimates(agree, "pairwise_accuracy", "ci_low", "ci_high", "percent")
        agree["kendall_tau"] = _estimates(agree, "kendall_tau", "kendall_tau_ci_low", "kendall_tau_ci_high", "number")
        out.append(_table(agree[["judge", "pairwise_accuracy", "kendall_tau", "ranking_note", "pairs", "prompts"]],
                          "Agreement of each judge with the people on the pairs both answered: tie-aware pairwise "
                          "accuracy (a judge near one half counts as a tie, right when people tie), with its interval; "
                          "Kendall tau between the two rankings of the systems.", random_weights=rw))
    return out


def _table_sections(run, results, confidence: float) -> dict[str, list[str]]:
    """The tables of each section, as HTML."""
    t, rw = results.tables, bool(run.random_weights)
    out: dict[str, list[str]] = {key: [] for key in SECTION_TITLES}
    out["acceptance"] = _acceptance_tables(run, results, confidence, rw)
    out["labels"] = _label_tables(t, confidence, rw)
    out["paired"] = _paired_tables(t, confidence, rw)
    out["failures"] = _failure_tables(t, confidence, rw)
    out["judges"] = _judge_tables(t, confidence, rw)
    out["prompts"] = _prompt_tables(t)
    out["pairwise"] = _pairwise_tables(t, confidence, rw)
    if _has(t, "agents_not_found"):
        out["benchmark"].append(_table(t["agents_not_found"], "Prompts whose agents were not found in the prompt text "
                                       "(flag agents_not_found), with the reason: enriched, generated and judged like any "
                                       "other by the whole-prompt metrics (vqa, clipscore, pickscore), without agent, "
                                       "count, attribute, Soft-TIFA or detection atoms; counted in every table's n.",
                                       descriptive=True))
    return out


def _provenance(run) -> str:
    prov = final_provenance(run.provenance())
    rows = [{"stage": name, "status": entry.get("status", ""), "started": entry.get("started", ""),
             "ended": entry.get("ended") or ""} for name, entry in prov.get("stages", {}).items()]
    stages = pd.DataFrame(rows, columns=["stage", "status", "started", "ended"]).to_html(index=False, border=0) if rows else ""
    return (f"{stages}<p class='caption'>The analyze stage ends with this report, so it shows as done at the time the "
            f"report was written.</p><pre>{html.escape(json.dumps(prov, indent=2, sort_keys=True))}</pre>")


def final_provenance(provenance: dict, stage: str = "analyze", when: str | None = None) -> dict:
    """The run's provenance once `stage` has ended: the report is written as the stage's last step,
    so a stage still marked running is shown done, ended now (a stage already closed is left as is)."""
    from ..runs import now

    data = copy.deepcopy(provenance)
    entry = data.get("stages", {}).get(stage)
    if entry is not None and entry.get("status") == "running":
        entry.update(status="done", ended=when or now())
        data["ended"] = entry["ended"]
    return data


def _toc(sections: list[Section]) -> str:
    def count(section: Section) -> str:
        n = sum(part.startswith("<figure") for part in section.parts)
        return f" ({n} figure{'s' if n != 1 else ''})" if n else ""

    items = "".join(f"<li><a href='#{s.id}'>{html.escape(s.title)}</a>{count(s)}</li>" for s in sections)
    return f"<nav class='toc'><b>Contents</b><ol>{items}</ol></nav>"


def render(run, results) -> str:
    """The report's HTML: see the module docstring."""
    confidence = run.config.analyze.confidence
    rw = bool(run.random_weights)
    source = results.acceptance.description
    sections = {key: Section(key, title) for key, title in SECTION_TITLES.items()}
    for key, parts in _table_sections(run, results, confidence).items():
        sections[key].parts += parts
    files = figure_files(run, results)
    placed = sorted(files, key=lambda n: (list(SECTION_TITLES).index(_section_of(n)), _order_key(n, _section_of(n))))
    for number, name in enumerate(placed, 1):
        sections[_section_of(name)].parts.append(_figure(name, files[name], fg.caption(name, source, confidence), number, rw))
    notes = [n for n in results.notes if n]
    if notes:
        sections["notes"].parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    if results.tables:
        sections["notes"].parts.append(f"<p class='caption'>Every table is also in the run's tables/ folder as CSV: "
                                       f"{html.escape(', '.join(n for n in results.tables if not n.startswith('_')))}.</p>")
    sections["provenance"].parts.append(_provenance(run))
    shown = [s for s in sections.values() if s.parts]
    page = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>act2i report: {html.escape(run.name)}</title>",
            f"<style>{CSS}</style></head><body>", f"<h1>act2i report: {html.escape(run.name)}</h1>"]
    if rw:
        page.append("<p class='warning'>Random-weight models (smoke profile): every number and figure below tests the "
                    "pipeline; none says anything about a real model.</p>")
    page.append(f"<p class='source'>Acceptance source: {html.escape(source)}.</p>")
    page.append(_toc(shown))
    for section in shown:
        page.append(f"<section id='{section.id}'><h2>{html.escape(section.title)}</h2>")
        page += section.parts
        page.append("</section>")
    page.append("</body></html>")
    return "\n".join(page)
