"""`report.html`: one self-contained page with the headline table, the figures and the provenance."""

from __future__ import annotations

import base64
import html
import json

import pandas as pd

CSS = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: right; } th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
.warning { background: #fdecea; color: #8a1c0f; padding: 0.6rem 0.8rem; border-radius: 0.3rem; font-weight: 600; }
.source { color: #444; font-style: italic; }
figure { margin: 1rem 0; } figure img { max-width: 100%; } figcaption { font-size: 0.8rem; color: #555; }
pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; font-size: 0.75rem; }
"""


def headline(results) -> pd.DataFrame:
    """Acceptance (with interval) per model and variant, and the relative gain over base."""
    rates = results.rates.copy()
    rates["acceptance (95% CI)"] = [f"{a:.1%} [{lo:.1%}, {hi:.1%}]" for a, lo, hi in zip(rates["acceptance"], rates["ci_low"], rates["ci_high"])]
    table = rates[["model", "variant", "acceptance (95% CI)", "images"]]
    if len(results.gains):
        gains = results.gains.copy()
        gains["relative gain (95% CI)"] = [
            f"{g:+.1%} [{lo:+.1%}, {hi:+.1%}]" if pd.notna(g) else "n/a (base acceptance is 0)"
            for g, lo, hi in zip(gains["relative_gain"], gains["relative_ci_low"], gains["relative_ci_high"])]
        table = table.merge(gains[["model", "variant", "relative gain (95% CI)"]], on=["model", "variant"], how="left").fillna("")
    return table


def _image(path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(path.stem)}</figcaption></figure>'


def render(run, results) -> str:
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>act2i report: {html.escape(run.name)}</title>",
             f"<style>{CSS}</style></head><body>", f"<h1>act2i report: {html.escape(run.name)}</h1>"]
    if run.random_weights:
        parts.append("<p class='warning'>Random-weight models (smoke profile): every number and figure below tests the "
                     "pipeline; none says anything about a real model.</p>")
    parts.append(f"<p class='source'>Acceptance source: {html.escape(results.acceptance.description)}.</p>")
    parts.append("<h2>Acceptance and gains</h2>")
    parts.append(headline(results).to_html(index=False, escape=True))
    if "gee_odds_ratios" in results.tables and len(results.tables["gee_odds_ratios"]):
        parts.append("<h2>Odds ratios (GEE)</h2>")
        parts.append(results.tables["gee_odds_ratios"].round(3).to_html(index=False))
    if "metric_validity" in results.tables and len(results.tables["metric_validity"]):
        parts.append("<h2>Which automatic judge to trust</h2>")
        parts.append(results.tables["metric_validity"].round(3).to_html(index=False))
    parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in results.notes if n) + "</ul>")
    parts.append("<h2>Figures</h2>")
    parts += [_image(path) for path in results.figures.values()]
    parts.append("<h2>Provenance</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(run.provenance(), indent=2, sort_keys=True))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
