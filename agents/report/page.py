"""The report as one self-contained HTML page: inline CSS, inline SVG, a few lines of JS.

Nothing is fetched: no fonts, scripts, images or styles from anywhere. Every string that
came from the ledger or the audit trail (hypotheses, patches, agent text, rule messages)
goes through `_e` (html.escape with quotes), so a patch holding `<script>` shows as text.
"""

from __future__ import annotations

import math
from collections import defaultdict
from html import escape

from agents.report.model import Attempt, Experiment, ReportData, Rule
from agents.report.patchview import mark, parse
from agents.report.svg import render_svg


def _e(text: object) -> str:
    return escape("" if text is None else str(text), quote=True)


def render_html(data: ReportData) -> str:
    """The whole page as a string (UTF-8 when written)."""
    title = f"labwarden report: {data.workspace}"
    body = [
        f"<header><h1>{_e(title)}</h1>",
        f'<p class="meta">generated {_e(data.generated_at)} &middot; metric '
        f"<b>{_e(data.metric)}</b> ({_e(data.direction)})</p></header>",
        _notes(data),
        _summary(data),
        '<section id="progress"><h2>Progress</h2>',
        f'<div class="plot">{render_svg(data)}</div></section>',
        _experiments(data),
        _attempts(data),
        _trust(data),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Belt and braces: even if something slipped past escaping, the page may load nothing.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        + "".join(body)
        + f"<script>{JS}</script></body></html>\n"
    )


def _notes(data: ReportData) -> str:
    if not data.notes:
        return ""
    items = "".join(f"<li>{_e(n)}</li>" for n in data.notes)
    return f'<ul class="notes">{items}</ul>'


def _fmt(v: float | None, digits: int = 4) -> str:
    return "" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _summary(data: ReportData) -> str:
    ex = [e for e in data.experiments if e.kind != "try"]
    manual = len(data.experiments) - len(ex)
    count = defaultdict(int)
    for e in ex:
        count[e.status] += 1
    scored = [e.value for e in ex if e.status in ("keep", "baseline") and e.value is not None]
    best = None
    for v in scored:
        if best is None or data.better(v, best):
            best = v
    tokens = sum(e.tokens or 0 for e in ex)
    cost = sum(e.cost_usd or 0.0 for e in ex)
    cards = [
        ("experiments", str(len(ex))),
        ("kept", str(count["keep"])),
        ("discarded", str(count["discard"])),
        ("crashed", str(count["crash"])),
        # One word for every attempt that never ran to a score, counted from the same list
        # as the "Attempts stopped" section (guard checks from the command line included),
        # split by who stopped it.
        *((f"stopped by {who}", str(n)) for who, n in _stops(data.attempts).items()),
        ("attempts stopped", str(len(data.attempts))),
        (f"best {data.metric}", _fmt(best) or "\u2014"),
        ("baseline", _fmt(data.baseline) or "\u2014"),
    ]
    if manual:
        cards.append(("manual tries", str(manual)))
    if tokens or cost:
        cards.append(("LLM tokens", f"{tokens:,}"))
        cards.append(("LLM cost", f"${cost:.2f}"))
    inner = "".join(
        f'<div class="card"><div class="k">{_e(k)}</div><div class="v">{_e(v)}</div></div>'
        for k, v in cards
    )
    return f'<section id="summary" class="cards">{inner}</section>'


COLUMNS = (
    ("#", "num"), ("id", "text"), ("hypothesis", "text"), ("status", "text"),
    ("val_bpb", "num"), ("margin", "num"), ("time (s)", "num"), ("trained (s)", "num"),
    ("export (s)", "num"), ("tokens", "num"),
    ("cost ($)", "num"), ("agent", "text"),
)


def _experiments(data: ReportData) -> str:
    if not data.experiments:
        return (
            '<section id="experiments"><h2>Experiments</h2>'
            '<p class="empty">No experiments recorded yet. Run <code>labwarden run</code> '
            "and regenerate this page.</p></section>"
        )
    head = "".join(
        f'<th data-type="{t}" tabindex="0" aria-sort="none">'
        f'{_e(data.metric if name == "val_bpb" else name)}</th>'
        for name, t in COLUMNS
    )
    # Numbered as on the plot; manual tries (`labwarden try`) follow, unnumbered.
    research = [e for e in data.experiments if e.kind != "try"]
    rows = [_row(i, e) for i, e in enumerate(research, start=1)]
    rows += [_row(None, e) for e in data.experiments if e.kind == "try"]
    return (
        '<section id="experiments"><h2>Experiments</h2>'
        '<p class="hint">Click a column header to sort. Margin: how much better than the best '
        "before it (positive is better).</p>"
        f'<table id="experiments-table" class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _num_cell(v: float | int | None, text: str) -> str:
    key = "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else repr(v)
    return f'<td class="num" data-sort="{_e(key)}">{_e(text)}</td>'


def _row(i: int | None, e: Experiment) -> str:
    hyp = e.hypothesis or ""
    margin = "" if e.margin is None else f"{e.margin:+.4f}"
    if e.reason and e.status in ("crash", "blocked", "rejected"):
        hyp_html = f'{_e(hyp)}<div class="reason">{_e(e.reason)}</div>'
    else:
        hyp_html = _e(hyp)
    return (
        f'<tr class="st-{_e(e.status)}">'
        f'{_num_cell(i, "manual" if i is None else str(i))}'
        f"<td class=\"id\" data-sort=\"{_e(e.id)}\"><code>{_e(e.id)}</code></td>"
        f'<td class="hyp" data-sort="{_e(hyp)}">{hyp_html}</td>'
        f'<td data-sort="{_e(e.status)}">'
        f'<span class="badge b-{_e(e.status)}">{_e(e.status)}</span></td>'
        f"{_num_cell(e.value, _fmt(e.value))}"
        f"{_num_cell(e.margin, margin)}"
        f"{_num_cell(e.seconds, _fmt(e.seconds, 1))}"
        f"{_num_cell(e.trained_s, _fmt(e.trained_s, 1))}"
        f"{_num_cell(e.export_s, _fmt(e.export_s, 1))}"
        f"{_num_cell(e.tokens, f'{e.tokens:,}' if e.tokens else '')}"
        f"{_num_cell(e.cost_usd, f'{e.cost_usd:.4f}' if e.cost_usd else '')}"
        f'<td data-sort="{_e(e.agent)}">{_e(e.agent)}'
        + (f'<div class="model">{_e(e.model)}</div>' if e.model and e.model != e.agent else "")
        + "</td></tr>"
    )


def stopper(a: Attempt) -> str:
    """Who stopped an attempt: the guards, the sandbox (runtime), the reviewer or the
    evaluator (a rejection)."""
    rules = [f.rule for f in a.findings if f.severity == "block"] or [f.rule for f in a.findings]
    if any(r.startswith("runtime.") for r in rules):
        return "the sandbox"
    if a.verdict == "rejected":
        return "the reviewer" if a.role == "reviewer" else "the evaluator"
    return "the guards"


def _stops(attempts: list[Attempt]) -> dict[str, int]:
    out = {"the guards": 0, "the sandbox": 0, "the reviewer": 0, "the evaluator": 0}
    for a in attempts:
        out[stopper(a)] += 1
    return {k: v for k, v in out.items() if v or k == "the guards"}


def _attempts(data: ReportData) -> str:
    groups: dict[str, list[Attempt]] = defaultdict(list)
    for a in data.attempts:
        # Group by what stopped it: the blocking findings; notes ride along in the list.
        stops = [f for f in a.findings if f.severity == "block"] or list(a.findings)
        rules = list(dict.fromkeys(f.rule for f in stops)) or [a.verdict or "unknown"]
        for r in rules:
            groups[r].append(a)
    head = ('<section id="attempts"><h2>Attempts stopped</h2><p class="hint">Stopped before '
            'a score: blocked by the guards or the sandbox, rejected by the reviewer or the '
            'evaluator.</p>')
    if not groups:
        return head + '<p class="empty">None: no attempt was stopped.</p></section>'
    rules = {r.id: r for r in [*data.other_stops, *data.rules]}
    toc = "".join(
        f'<li><a href="#rule-{_e(_slug(r))}"><code>{_e(r)}</code></a> ({len(a)})</li>'
        for r, a in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    )
    parts = [head, f'<p class="hint">Grouped by rule; an attempt that broke several rules '
             f'appears under each.</p><ul class="toc">{toc}</ul>']
    for rule_id, attempts in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        parts.append(_rule_group(rule_id, attempts, rules.get(rule_id)))
    parts.append("</section>")
    return "".join(parts)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def _rule_group(rule_id: str, attempts: list[Attempt], rule: Rule | None) -> str:
    explain = rule.description if rule and rule.description else ""
    if not explain:
        msgs = [f.message for a in attempts for f in a.findings if f.rule == rule_id and f.message]
        explain = msgs[0] if msgs else ""
    sev = rule.severity if rule else ""
    out = [
        f'<div class="rule" id="rule-{_e(_slug(rule_id))}" data-rule="{_e(rule_id)}">'
        f"<h3><code>{_e(rule_id)}</code> <span class=\"count\">{len(attempts)} attempt"
        f"{'s' if len(attempts) != 1 else ''}</span>"
        + (f' <span class="badge b-sev">{_e(sev)}</span>' if sev else "")
        + "</h3>",
        f'<p class="explain">{_e(explain)}</p>' if explain else "",
    ]
    for a in attempts:
        out.append(_attempt(rule_id, a))
    out.append("</div>")
    return "".join(out)


PATCH_LINES = 300
"""Lines of one attempt's patch the page shows: a hostile 10 MB patch stays a small page."""


def _attempt(rule_id: str, a: Attempt) -> str:
    who = " / ".join(x for x in (a.role, a.model) if x) or "no agent (a command-line check)"
    summary = (
        f"<summary><span class=\"badge b-{_e(a.verdict)}\">{_e(a.verdict)}</span> "
        f"audit <code>{_e(a.id)}</code>"
        + (f" &middot; experiment <code>{_e(a.experiment_id)}</code>" if a.experiment_id else "")
        + f" &middot; {_e(who)} &middot; {_e(a.created_at)}</summary>"
    )
    findings = "".join(
        f'<li class="{"this" if f.rule == rule_id else "other"}"><code>{_e(f.rule)}</code> '
        f'<span class="sev">{_e(f.severity)}</span> '
        + (f"<code>{_e(f.file)}{':' + str(f.line) if f.line else ''}</code> " if f.file else "")
        + f"{_e(f.message)}"
        + (f'<div class="evidence"><code>{_e(f.evidence)}</code></div>' if f.evidence else "")
        + "</li>"
        for f in a.findings
    )
    lines = mark(parse(a.patch), a.findings)
    pre = []
    cut = len(lines) - PATCH_LINES
    for ln in lines[:PATCH_LINES]:
        cls = f"ln {ln.kind}"
        if ln.marked:
            cls += " mark" if rule_id in ln.notes else " mark-other"
        num = ln.new if ln.new is not None else ln.old
        note = f' title="{_e(", ".join(ln.notes))}"' if ln.notes else ""
        pre.append(
            f'<span class="{cls}"{note}><span class="no">{num if num is not None else ""}</span>'
            f"{_e(ln.text)}</span>"
        )
    notes = []
    if cut > 0:
        notes.append(f"{cut:,} more line(s) not shown")
    if a.patch_bytes is not None and a.patch_bytes > len(a.patch.encode("utf-8", "replace")):
        notes.append(f"the audit trail keeps only the start of this {a.patch_bytes:,}-byte "
                     "patch")
    where = f" (labwarden audit show {a.id})" if a.id.isdigit() else ""
    note = f'<p class="hint">Cut: {_e("; ".join(notes))}{_e(where)}.</p>' if notes else ""
    patch = (
        f'<pre class="patch">{"".join(pre)}</pre>{note}' if a.patch.strip()
        else '<p class="empty">(no patch text recorded)</p>'
    )
    return (
        f'<details class="attempt" data-audit-id="{_e(a.id)}" open>{summary}'
        + (f'<p class="hyp"><b>Hypothesis:</b> {_e(a.hypothesis)}</p>' if a.hypothesis else "")
        + f'<ul class="findings">{findings}</ul>{patch}</details>'
    )


def _trust(data: ReportData) -> str:
    seal = (
        f'<code class="seal" id="seal-hash">{_e(data.seal_hash)}</code>' if data.seal_hash
        else '<span class="empty">no seal.json found (run <code>labwarden prepare</code>)</span>'
    )
    if data.seal_verified:
        h, eid = data.seal_verified
        same = "matches seal.json" if h == data.seal_hash else "DIFFERS from seal.json today"
        seal += (
            f'<br>Verified by the evaluator in experiment <code>{_e(eid)}</code>: '
            f'<code class="seal">{_e(h)}</code> ({same})'
        )
    if data.rules:
        rows = "".join(
            f"<tr><td><code>{_e(r.id)}</code></td><td>{_e(r.severity)}</td>"
            f"<td>{_e(r.source)}</td><td>{_e(r.description)}</td></tr>"
            for r in data.rules
        )
        table = (
            f'<p class="hint">{_e(data.rules_source)}</p>'
            '<table id="guards-table"><thead><tr><th>rule</th><th>severity</th><th>source</th>'
            f"<th>what it stops</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    else:
        table = '<p class="empty">No guard rules could be listed.</p>'
    return (
        '<section id="trust"><h2>What was checked</h2>'
        f"<p>Seal (SHA-256 manifest of the evaluator, tokenizer and data): {seal}</p>"
        f"<h3>Active guards</h3>{table}</section>"
    )


CSS = """
:root{--keep:#1a7f37;--discard:#8c959f;--base:#0969da;--crash:#cf222e;--blocked:#bc4c00;
--rejected:#8250df;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--soft:#f6f8fa}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1180px;padding:24px;color:var(--fg);background:var(--bg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",sans-serif}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line);
padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
code,pre{font-family:ui-monospace,"DejaVu Sans Mono","Liberation Mono",monospace;font-size:12.5px}
.meta,.hint{color:var(--muted);margin:2px 0 8px}
.empty{color:var(--muted);font-style:italic}
.notes{background:#fff8c5;border:1px solid #d4a72c;padding:8px 8px 8px 28px;border-radius:6px}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin:16px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 12px;min-width:110px;
background:var(--soft)}
.card .k{color:var(--muted);font-size:12px}.card .v{font-size:18px;font-weight:600}
.plot{border:1px solid var(--line);border-radius:6px;padding:4px}
#progress-plot{width:100%;height:auto;display:block}
#progress-plot .frame{fill:#fff;stroke:var(--line)}
#progress-plot .grid{stroke:#eef1f4}
#progress-plot .lane{stroke:var(--line);stroke-dasharray:2 3}
#progress-plot .tick{font-size:11px;fill:var(--muted)}
#progress-plot .axis{font-size:12px;fill:var(--fg)}
#progress-plot .empty{font-size:16px;fill:var(--muted)}
#progress-plot .band{fill:var(--base);fill-opacity:.09}
#progress-plot .baseline{stroke:var(--base);stroke-dasharray:6 4;stroke-width:1.2}
#progress-plot .best{fill:none;stroke:var(--keep);stroke-width:2}
#progress-plot .pt-keep{fill:var(--keep);stroke:#fff;stroke-width:1}
#progress-plot .pt-discard{fill:var(--discard);fill-opacity:.45}
#progress-plot .pt-baseline{fill:var(--base);fill-opacity:.7}
#progress-plot .pt-crash{stroke:var(--crash);stroke-width:2;fill:none}
#progress-plot .pt-blocked{fill:var(--blocked)}
#progress-plot .pt-rejected{fill:var(--rejected)}
#progress-plot .pt-planned,#progress-plot .pt-running{fill:none;stroke:var(--discard);
stroke-width:1.5}
#progress-plot .keep-label{font-size:10.5px;fill:var(--keep)}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{border-bottom:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
th{background:var(--soft);cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.hyp{max-width:420px;overflow-wrap:anywhere}td.id{white-space:nowrap}
tr.st-discard td{color:var(--muted)}
.reason{color:var(--crash);font-size:12px}
.model{color:var(--muted);font-size:11px;max-width:220px;overflow-wrap:anywhere}
.badge{display:inline-block;border-radius:10px;padding:0 7px;font-size:12px;color:#fff;
background:var(--muted)}
.b-keep{background:var(--keep)}.b-discard{background:var(--discard)}
.b-baseline{background:var(--base)}.b-tried{background:var(--discard)}.b-crash{background:var(--crash)}
.b-blocked{background:var(--blocked)}.b-rejected{background:var(--rejected)}
.b-sev{background:#57606a}
.toc{columns:3;padding-left:18px}
.rule{border:1px solid var(--line);border-left:4px solid var(--blocked);border-radius:6px;
padding:4px 12px 10px;margin:12px 0}
.rule .count{color:var(--muted);font-weight:normal;font-size:13px}
.explain{margin:2px 0 8px}
.attempt{margin:8px 0;border-top:1px dashed var(--line);padding-top:6px}
.attempt summary{cursor:pointer}
.findings{margin:6px 0;padding-left:18px}.findings li.other{color:var(--muted)}
.findings .sev{font-size:11px;text-transform:uppercase;color:var(--muted)}
.evidence code{background:var(--soft);padding:0 4px;overflow-wrap:anywhere}
pre.patch{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:6px 0;
overflow-x:auto;margin:6px 0;max-height:480px}
pre.patch .ln{display:block;padding:0 8px;white-space:pre}
pre.patch .no{display:inline-block;width:3.5em;color:#8c959f;user-select:none}
pre.patch .add{background:#dafbe1}pre.patch .del{background:#ffebe9}
pre.patch .hunk{color:var(--base)}pre.patch .file{font-weight:600}
pre.patch .mark{background:#ffd8b5;box-shadow:inset 4px 0 var(--blocked)}
pre.patch .mark-other{box-shadow:inset 4px 0 #d0d7de}
.seal{overflow-wrap:anywhere;background:var(--soft);padding:1px 4px}
"""

# Sorting only: reads the data-sort keys the server wrote, touches no text as HTML.
JS = """
(function(){
  document.querySelectorAll("table.sortable").forEach(function(table){
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function(th, col){
      function sort(){
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function(h){ h.setAttribute("aria-sort","none"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var num = th.getAttribute("data-type") === "num";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function(a, b){
          var x = a.cells[col].getAttribute("data-sort");
          var y = b.cells[col].getAttribute("data-sort");
          if (x === "" && y === "") return 0;
          if (x === "") return 1;
          if (y === "") return -1;
          var c = num ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
          return asc ? c : -c;
        });
        rows.forEach(function(r){ body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function(ev){ if (ev.key === "Enter") sort(); });
    });
  });
})();
"""
