"""The HTML report: self-contained, escaped, and renders in headless Chromium without errors."""

from __future__ import annotations

import re

from smallfirst.evaluate.report import render_html, write_html

from .helpers import fake_report


def test_report_is_self_contained_and_escapes_names():
    page = render_html(fake_report())
    assert "<script" not in page
    assert "tiny&lt;b&gt;" in page and "tiny<b>" not in page
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(sources) == 2
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert 'class="verdict pass"' in page


def test_failing_report_says_so():
    page = render_html(fake_report(threshold=0.99))
    assert 'class="verdict fail"' in page
    assert "no candidate meets accuracy &gt;= 0.99" in page


def test_report_renders_in_chromium_without_console_errors(chromium_page, tmp_path):
    path = write_html(fake_report(), tmp_path / "report.html")
    requests: list[str] = []
    page = chromium_page.page
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    assert chromium_page.console_errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests)
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) == 2 and all(w > 100 for w in widths)
    verdict = page.inner_text(".verdict")
    assert verdict.startswith("tiny<b>: free, so infinitely cheaper")
    assert page.locator("tr.winner td").first.inner_text() == "tiny<b>"


def test_a_candidate_that_defers_shows_its_coverage():
    from smallfirst.evaluate.candidate import Prediction
    from smallfirst.evaluate.deferral import attach_coverage

    report = fake_report()
    tiny = report.results[0]
    for i in range(0, len(tiny.predictions), 3):  # 10 of 30 deferred
        tiny.predictions[i] = Prediction(None, deferred=True)
    attach_coverage(tiny)
    page = render_html(report)
    assert "<th>coverage</th>" in page
    assert '<td>0.667 <span class="ci">[' in page and "<td>all</td>" in page
