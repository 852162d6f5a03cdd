"""The HTML report: one self-contained file (inline CSS, plots as base64 PNG, no scripts, no
CDN), so it can be attached to a CI run or mailed and still open offline.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

from smallfirst.evaluate.evaluation import EvalReport
from smallfirst.evaluate.runner import CandidateResult
from smallfirst.evaluate.stats import Estimate

CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
.meta { color: #666; font-size: 0.9rem; }
.verdict { padding: 0.8rem 1rem; border-radius: 6px; margin: 1rem 0; font-weight: 600; }
.pass { background: #e6f4ea; border-left: 5px solid #1b7f3b; }
.fail { background: #fdecea; border-left: 5px solid #c4302b; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; margin: 1rem 0; }
th, td { padding: 0.35rem 0.6rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.winner td { background: #f3faf5; font-weight: 600; }
.ci { color: #666; font-size: 0.8rem; }
figure { margin: 1rem 0; }
img { max-width: 100%; }
"""


def render_html(report: EvalReport) -> str:
    # matplotlib writes its font cache under ~/.cache on import: only when a report is drawn
    from smallfirst.evaluate.plots import cost_quality_png, latency_png

    metric = report.settings.metric
    winner = report.recommendation.winner
    verdict = "pass" if winner else "fail"
    scatter = cost_quality_png(report.results, metric, report.settings.threshold, winner)
    latency = latency_png(report.results, winner)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>smallfirst eval: {_e(report.task)}</title>",
            f"<style>{CSS}</style></head><body>",
            f"<h1>smallfirst eval: {_e(report.task)}</h1>",
            f'<p class="meta">{_e(report.kind)} task · {report.n} examples · bar: '
            f"{_e(metric)} lower bound ≥ {report.settings.threshold:g} · "
            f"{report.settings.resamples} bootstrap resamples (seed {report.settings.seed}) · "
            f"{when}</p>",
            f'<div class="verdict {verdict}">{_e(report.recommendation.message)}</div>',
            _table(report),
            f'<figure><img alt="cost vs quality" src="data:image/png;base64,{scatter}"></figure>',
            f'<figure><img alt="latency" src="data:image/png;base64,{latency}"></figure>',
            "</body></html>",
        ]
    )


def write_html(report: EvalReport, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_html(report), encoding="utf-8")
    return path


def _table(report: EvalReport) -> str:
    metric_names = list(report.results[0].metrics) if report.results else []
    head = "".join(f"<th>{_e(m)}</th>" for m in metric_names)
    rows = [
        "<table><thead><tr><th>candidate</th>"
        f"{head}<th>coverage</th><th>p50 s</th><th>p95 s</th><th>tokens in/out</th>"
        "<th>$ / 1k req</th>"
        "<th>errors</th></tr></thead><tbody>"
    ]
    rows += [_row(r, metric_names, r.name == report.recommendation.winner) for r in report.results]
    rows.append("</tbody></table>")
    return "".join(rows)


def _row(result: CandidateResult, metric_names: list[str], is_winner: bool) -> str:
    cells = [_estimate_cell(result.metrics[name]) for name in metric_names]
    cells.append(_estimate_cell(result.coverage) if result.coverage else "<td>all</td>")
    tokens_in, tokens_out = result.mean_tokens()
    error_title = next((e for e in result.errors if e), "")
    return (
        f'<tr class="{"winner" if is_winner else ""}"><td>{_e(result.name)}</td>{"".join(cells)}'
        f"<td>{result.latency_p50_s:.3f}</td><td>{result.latency_p95_s:.3f}</td>"
        f"<td>{tokens_in:.0f} / {tokens_out:.0f}</td><td>{result.usd_per_1k:.4f}</td>"
        f'<td title="{_e(error_title)}">{result.error_count}</td></tr>'
    )


def _estimate_cell(estimate: Estimate) -> str:
    return (
        f'<td>{estimate.value:.3f} <span class="ci">[{estimate.low:.3f}, '
        f"{estimate.high:.3f}]</span></td>"
    )


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
