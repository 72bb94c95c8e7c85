"""`report.html`: one self-contained page with the headline table, the paired tests, the GEE model,
metric validity, failure modes, the figures and the provenance.

Every number on the page comes with its interval ("48.0 % [39.2 %, 57.1 %]") or is a count (the
columns images, prompts, pairs); p-values print as "< 0.001" below a thousandth, never as 0.000.
"""

from __future__ import annotations

import base64
import html
import json
import math
import numbers

import pandas as pd

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: right; } th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
.warning { background: #fdecea; color: #8a1c0f; padding: 0.6rem 0.8rem; border-radius: 0.3rem; font-weight: 600; }
.source { color: #444; font-style: italic; } .caption { color: #555; font-size: 0.8rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; } figcaption { font-size: 0.8rem; color: #555; }
pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; font-size: 0.75rem; }
"""

COUNT_COLUMNS = ("images", "prompts", "pairs", "prompt rows")  # columns holding an n, not an estimate


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


def headline(results, confidence: float = 0.95) -> pd.DataFrame:
    """Acceptance (with interval and counts) per model and variant, and the absolute and relative gain
    over base (with intervals and, where the relative gain's interval is unusual, why)."""
    level = f"{confidence:.0%} CI"
    rates = results.rates
    table = pd.DataFrame({
        "model": rates["model"], "variant": rates["variant"],
        f"acceptance ({level})": [estimate(a, lo, hi, "percent") for a, lo, hi in
                                  zip(rates["acceptance"], rates["ci_low"], rates["ci_high"])],
        "images": rates["images"], "prompts": rates["prompts"]})
    if len(results.gains):
        g = results.gains
        gains = pd.DataFrame({
            "model": g["model"], "variant": g["variant"],
            f"absolute gain ({level})": [estimate(a, lo, hi, "signed percent") for a, lo, hi in
                                         zip(g["absolute_gain"], g["absolute_ci_low"], g["absolute_ci_high"])],
            f"relative gain ({level})": [estimate(r, lo, hi, "signed percent") if _finite(r) else "n/a (base acceptance is 0)"
                                         for r, lo, hi in zip(g["relative_gain"], g["relative_ci_low"], g["relative_ci_high"])],
            "note": g["relative_ci_note"].fillna("")})
        table = table.merge(gains, on=["model", "variant"], how="left").fillna("")
    return table


def paired_table(pairs: pd.DataFrame, within: str, confidence: float = 0.95) -> pd.DataFrame:
    """Win rates with intervals, the pairs and prompts compared, and the p-values (raw and Holm)."""
    return pd.DataFrame({
        within: pairs[within], "a": pairs["a"], "b": pairs["b"],
        f"a wins among discordant pairs ({confidence:.0%} CI)": [
            estimate(w, lo, hi, "percent") for w, lo, hi in
            zip(pairs["win_rate_a"], pairs["win_rate_a_ci_low"], pairs["win_rate_a_ci_high"])],
        "pairs": pairs["pairs"], "prompts": pairs["prompts"],
        "p": [p_value(p) for p in pairs["p_value"]], "p (Holm)": [p_value(p) for p in pairs["p_holm"]]})


def gee_table(gee: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    return pd.DataFrame({
        "term": gee["term"],
        f"odds ratio ({confidence:.0%} CI)": [estimate(o, lo, hi, "ratio") for o, lo, hi in
                                              zip(gee["odds_ratio"], gee["ci_low"], gee["ci_high"])],
        "p": [p_value(p) for p in gee["p_value"]], "images": gee["images"], "prompts": gee["prompts"]})


def validity_table(validity: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    out = pd.DataFrame({"metric": validity["metric"]})
    for column, title in (("auroc", "AUROC"), ("spearman", "Spearman"), ("kendall", "Kendall tau-b"),
                          ("best_f1", "best F1"), ("best_f1_threshold", "at threshold"),
                          ("prompt_auroc", "prompt AUROC"), ("prompt_spearman", "prompt Spearman"),
                          ("prompt_kendall", "prompt Kendall")):
        out[f"{title} ({confidence:.0%} CI)"] = [
            estimate(v, lo, hi, "number") for v, lo, hi in
            zip(validity[column], validity[f"{column}_ci_low"], validity[f"{column}_ci_high"])]
    out["images"], out["prompts"], out["prompt rows"] = validity["images"], validity["prompts"], validity["prompt_rows"]
    return out


def failure_table(failures: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    return pd.DataFrame({
        "model": failures["model"], "variant": failures["variant"], "mode": failures["mode"],
        f"share of images ({confidence:.0%} CI)": [estimate(s, lo, hi, "percent") for s, lo, hi in
                                                   zip(failures["share"], failures["ci_low"], failures["ci_high"])],
        f"change against base ({confidence:.0%} CI)": [
            estimate(c, lo, hi, "signed percent") if _finite(c) else "" for c, lo, hi in
            zip(failures["change_vs_base"], failures["change_vs_base_ci_low"], failures["change_vs_base_ci_high"])],
        "images": failures["images"], "prompts": failures["prompts"]})


def _image(path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(path.stem)}</figcaption></figure>'


def _section(title: str, table: pd.DataFrame, caption: str = "") -> list[str]:
    parts = [f"<h2>{html.escape(title)}</h2>", table.to_html(index=False, escape=True, na_rep="n/a")]
    if caption:
        parts.append(f"<p class='caption'>{html.escape(caption)}</p>")
    return parts


def render(run, results) -> str:
    confidence = run.config.analyze.confidence
    t = results.tables
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>act2i report: {html.escape(run.name)}</title>",
             f"<style>{CSS}</style></head><body>", f"<h1>act2i report: {html.escape(run.name)}</h1>"]
    if run.random_weights:
        parts.append("<p class='warning'>Random-weight models (smoke profile): every number and figure below tests the "
                     "pipeline; none says anything about a real model.</p>")
    parts.append(f"<p class='source'>Acceptance source: {html.escape(results.acceptance.description)}.</p>")
    parts += _section("Acceptance and gains", headline(results, confidence),
                      f"Intervals: {confidence:.0%}, prompt bootstrap ({run.config.analyze.n_bootstrap} draws of the prompts, "
                      "each with all its images; BCa), or Clopper-Pearson with the prompts as units where a rate is at or "
                      "near 0 % or 100 %. The intervals are for the average over prompts like these.")
    if "paired_variants" in t and len(t["paired_variants"]):
        parts += _section("Variant against variant", paired_table(t["paired_variants"], "model", confidence),
                          "Exact sign-flip test of the per-prompt wins minus losses (the prompt is the unit; clustered "
                          "McNemar), Holm-corrected over the table.")
    if "paired_models" in t and len(t["paired_models"]):
        parts += _section("Model against model", paired_table(t["paired_models"], "variant", confidence))
    if "gee_odds_ratios" in t and len(t["gee_odds_ratios"]):
        parts += _section("Odds ratios (GEE)", gee_table(t["gee_odds_ratios"], confidence),
                          "Logistic GEE with the prompts as clusters (exchangeable correlation, robust Wald intervals).")
    if "metric_validity" in t and len(t["metric_validity"]):
        parts += _section("Which automatic judge to trust", validity_table(t["metric_validity"], confidence),
                          "Percentile intervals from the prompt bootstrap (every image of a drawn prompt, across models "
                          "and variants). Prompt level: each model, variant and prompt's images averaged.")
    if "failure_modes" in t and len(t["failure_modes"]):
        parts += _section("Failure modes", failure_table(t["failure_modes"], confidence))
    parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in results.notes if n) + "</ul>")
    parts.append("<h2>Figures</h2>")
    parts += [_image(path) for path in results.figures.values()]
    parts.append("<h2>Provenance</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(run.provenance(), indent=2, sort_keys=True))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
