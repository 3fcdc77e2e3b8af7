"""`azr-jax report`: one self-contained report.html with training curves and the task browser."""

from __future__ import annotations

import html
import json
import math

from azr_jax.errors import UserError
from azr_jax.pipeline import workdir_fs
from azr_jax.pipeline.metrics import read_metrics, update_rows
from azr_jax.pipeline.probe import PROBE_NAMES
from azr_jax.pipeline.report_passk import TITLE as PASSK_TITLE, passk_curves
from azr_jax.pipeline.tasklog import read_solves, read_tasks
from azr_jax.pipeline.workdir_layout import CONFIG_FILE, REPORT_FILE
from azr_jax.selfplay import registry

# (title, metric-key prefixes or exact keys) for each plot; keys missing from a run are skipped.
# Each probe's accuracies: overall, then each registered task type's (in group order).
def probe_acc(name: str) -> tuple[str, ...]:
    return (f"probe/{name}/acc",) + tuple(f"probe/{name}/{t}_acc"
                                         for t in registry.ordered("group_rank"))


PROBE_ACC = tuple(k for name in PROBE_NAMES for k in probe_acc(name))  # held-out first
# The learning curves come first (and make up `learning_svg`, the picture in docs/); the
# held-out probe leads (the pass@k chart follows it in the report).
LEARNING_PLOTS = (
    ("Held-out probe: solver greedy accuracy (programs unlike the seeds)",
     probe_acc("heldout")),
    ("Seen probe: greedy accuracy on the seed programs, new inputs (recall)",
     probe_acc("seen")),
    ("Probe: valid-proposal rate", ("probe/valid_rate",)),
    ("Valid-proposal rate per task type", "valid_rate/"),
    ("Format-error rate per group", "format_error/"),
)
PLOTS = LEARNING_PLOTS + (
    ("Reward per group", "reward/"),
    ("Solve rate per task type", "solve_rate/"),
    ("Buffer sizes", "buffer/"),
    ("Mean response length (tokens)", "response_len/"),
    ("Policy loss, clipping and log-prob mismatch",
     ("loss", "clip_fraction", "approx_kl", "logprob/sampler_vs_recomputed_abs",
      "logprob/sampler_vs_recomputed_max")),
    ("Diversity: copy rate per task type", "diversity/copy_rate/"),
    ("Diversity: distinct programs (share of valid proposals)", "diversity/distinct/"),
    ("Diversity: nearest-reference distance", "diversity/nearest_distance/"),
    ("Diversity: program size (AST nodes)", "diversity/program_size/"),
    ("Diversity: answer entropy of learnability rollouts (nats)", "diversity/answer_entropy/"),
    ("Diversity: valid-and-novel rate", "diversity/novel_valid_rate/"),
    ("Seconds per step by phase", "time/"),
    ("Device idle fraction (waiting for host)", ("device_idle_frac",)),
)
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")


def _series(rows, keys):
    if isinstance(keys, str):
        names = sorted({k for r in rows for k in r if k.startswith(keys)})
    else:
        names = [k for k in keys if any(k in r for r in rows)]
    out = {}
    for name in names:
        pts = [(r["step"], r[name]) for r in rows
               if isinstance(r.get(name), (int, float)) and math.isfinite(r[name])]
        if pts:
            out[name] = pts
    return out


def svg_plot(title: str, series: dict, width=460, height=250, xlabel="step",
             dashed=frozenset()) -> str:
    """A small line plot as inline SVG (no plotting library needed); series named in
    ``dashed`` are drawn dashed."""
    pad_l, pad_r, pad_t, pad_b = 52, 10, 24, 30
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    w, h = width - pad_l - pad_r, height - pad_t - pad_b

    def px(x):
        return pad_l + (x - x0) / (x1 - x0) * w

    def py(y):
        return pad_t + (1 - (y - y0) / (y1 - y0)) * h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 16 * len(series)}">',
             f'<text x="{width / 2}" y="15" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>',
             f'<rect x="{pad_l}" y="{pad_t}" width="{w}" height="{h}" fill="none" stroke="#999"/>']
    for frac in (0, 0.5, 1):
        yv = y0 + frac * (y1 - y0)
        parts.append(f'<text x="{pad_l - 4}" y="{py(yv) + 4:.1f}" text-anchor="end" '
                     f'font-size="10">{yv:.3g}</text>')
    for xv in (x0, x1):
        parts.append(f'<text x="{px(xv):.1f}" y="{pad_t + h + 14}" text-anchor="middle" '
                     f'font-size="10">{xv:.3g}</text>')
    parts.append(f'<text x="{pad_l + w / 2}" y="{pad_t + h + 26}" text-anchor="middle" '
                 f'font-size="10">{html.escape(xlabel)}</text>')
    for i, (name, pts) in enumerate(sorted(series.items())):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        dash = ' stroke-dasharray="5,3"' if name in dashed else ""
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5"{dash} '
                     f'points="{path}"/>')
        for x, y in pts:
            parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2" fill="{color}">'
                         f'<title>{html.escape(name)} {html.escape(xlabel)} {x}: {y:.4g}'
                         f'</title></circle>')
        ly = height + 12 + 16 * i - 4
        parts.append(f'<rect x="{pad_l}" y="{ly - 8}" width="10" height="3" fill="{color}"/>'
                     f'<text x="{pad_l + 14}" y="{ly}" font-size="11">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def learning_svg(workdir: str, columns: int = 2) -> str:
    """The LEARNING_PLOTS of a run as one standalone SVG (BENCHMARKS.md's picture)."""
    rows = read_metrics(workdir)
    plots = [(t, _series(rows, k)) for t, k in LEARNING_PLOTS]
    plots = [(t, s) for t, s in plots if s]
    if not plots:
        raise UserError(f"workdir {workdir!r} has no learning metrics (probe/, valid_rate/, "
                        "format_error/) to draw")
    cell_w, cell_h = 470, 250 + 16 * max(len(s) for _, s in plots) + 10
    n_rows = -(-len(plots) // columns)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{cell_w * columns}" '
             f'height="{cell_h * n_rows}" font-family="sans-serif">'
             f'<rect width="100%" height="100%" fill="#fff"/>']
    for i, (title, series) in enumerate(plots):
        x, y = cell_w * (i % columns), cell_h * (i // columns)
        parts.append(f'<g transform="translate({x},{y})">{svg_plot(title, series)}</g>')
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """body{font-family:sans-serif;margin:20px;color:#222}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots svg{border:1px solid #eee;background:#fff}
table{border-collapse:collapse;font-size:12px;width:100%}td,th{border:1px solid #ddd;padding:4px;
vertical-align:top}th{background:#f3f3f3;cursor:pointer;position:sticky;top:0}
pre{margin:0;white-space:pre-wrap;max-width:520px;font-size:11px}.bad{background:#fff3f3}
.good{background:#f3fff3}#controls{margin:10px 0}#controls *{margin-right:8px}"""

# Both browsers (proposals: id "tasks", solver rollouts: id "solves") filter by search text,
# type and a second field (data-f: valid / outcome), and sort by a clicked column.
_SCRIPT = """function flt(id){const g=s=>document.getElementById(id+'-'+s).value;
const q=g('q').toLowerCase(),t=g('t'),v=g('v');let n=0;
for(const r of document.querySelectorAll('#'+id+' tbody tr')){const ok=(!q||r.innerText.toLowerCase()
.includes(q))&&(!t||r.dataset.type===t)&&(!v||r.dataset.f===v);r.style.display=ok?'':'none';
n+=ok}document.getElementById(id+'-n').innerText=n+' shown'}
function srt(id,c){const b=document.querySelector('#'+id+' tbody');const rs=[...b.rows];
const d=b.dataset.dir=b.dataset.dir==='1'?'-1':'1';rs.sort((x,y)=>{const a=x.cells[c].dataset.k??
x.cells[c].innerText,z=y.cells[c].dataset.k??y.cells[c].innerText;const fa=parseFloat(a),fz=parseFloat(z);
return (isNaN(fa)||isNaN(fz)?a.localeCompare(z):fa-fz)*d});rs.forEach(r=>b.appendChild(r))}"""


def _summary_table(rows) -> str:
    if not rows:
        return "<p>No metrics yet.</p>"
    last = rows[-1]
    keys = [k for k in sorted(last) if k != "step" and isinstance(last[k], (int, float))]
    cells = "".join(f"<tr><td>{html.escape(k)}</td><td>{last[k]:.4g}</td></tr>" for k in keys)
    return f"<table style='width:auto'><tr><th>metric (step {last['step']})</th><th>value</th></tr>{cells}</table>"


def _task_rows(tasks) -> str:
    out = []
    for t in tasks:
        valid = bool(t.get("valid"))
        rate = t.get("solve_rate")
        rate_txt = "" if rate is None else f"{rate:.2f}"
        io_in = t.get("input", "")
        if isinstance(io_in, list):
            io_in = "\n".join(io_in)
        io_out = t.get("output", "")
        if isinstance(io_out, list):
            io_out = "\n".join(io_out)
        note = t.get("error") or t.get("message") or ""
        response = t.get("response", "")
        out.append(
            f'<tr class="{"good" if valid else "bad"}" data-type="{html.escape(t.get("type", ""))}" '
            f'data-f="{int(valid)}"><td>{t.get("step", "")}</td><td>{html.escape(t.get("type", ""))}</td>'
            f'<td>{"yes" if valid else "no"}</td><td data-k="{rate if rate is not None else -1}">{rate_txt}</td>'
            f'<td>{t.get("reward", "")}</td><td><pre>{html.escape(t.get("program", ""))}</pre></td>'
            f'<td><pre>{html.escape(str(io_in))}</pre></td><td><pre>{html.escape(str(io_out))}</pre></td>'
            f'<td><pre>{html.escape(str(note)[:400])}</pre></td>'
            f'<td><details><summary>show</summary><pre>{html.escape(response)}</pre></details>'
            f'</td></tr>')
    return "".join(out)


def _solve_rows(solves) -> str:
    out = []
    for s in solves:
        outcome = str(s.get("outcome", ""))
        cls = "good" if outcome == "passed" else "bad"
        answer = s.get("answer") or s.get("error") or ""
        out.append(
            f'<tr class="{cls}" data-type="{html.escape(s.get("type", ""))}" '
            f'data-f="{html.escape(outcome)}"><td>{s.get("step", "")}</td>'
            f'<td>{html.escape(s.get("type", ""))}</td><td>{html.escape(outcome)}</td>'
            f'<td>{s.get("reward", "")}</td>'
            f'<td><details><summary>show</summary><pre>{html.escape(s.get("prompt", ""))}</pre></details></td>'
            f'<td><pre>{html.escape(str(answer)[:600])}</pre></td>'
            f'<td><details><summary>show</summary><pre>{html.escape(s.get("response", ""))}</pre>'
            f'</details></td></tr>')
    return "".join(out)


def _controls(id_: str, what: str, types, second: list[tuple[str, str]], count: int) -> str:
    """Search box, type menu and a second menu (value, label) above browser `id_`."""
    options = "".join(f'<option value="{html.escape(t)}">{html.escape(t)}</option>' for t in types)
    extra = "".join(f'<option value="{html.escape(v)}">{html.escape(label)}</option>'
                    for v, label in second)
    return (f'<div id="controls"><input id="{id_}-q" placeholder="search {what}..." '
            f'oninput="flt(\'{id_}\')" size="40"><select id="{id_}-t" onchange="flt(\'{id_}\')">'
            f'<option value="">all types</option>{options}</select><select id="{id_}-v" '
            f'onchange="flt(\'{id_}\')">{extra}</select><span id="{id_}-n">{count} shown</span></div>')


def _header(id_: str, names) -> str:
    """A table head whose first `sortable` columns sort on click."""
    cells = "".join(f'<th onclick="srt(\'{id_}\',{i})">{n}</th>' if sortable else f"<th>{n}</th>"
                    for i, (n, sortable) in enumerate(names))
    return f'<thead><tr>{cells}</tr></thead>'


def _rules(config_text: str) -> str:
    """The self-play rules in use, from the saved config (see docs/FIDELITY.md)."""
    try:
        sp_cfg = json.loads(config_text).get("selfplay", {})
    except ValueError:
        return ""
    if "reward_rule" not in sp_cfg:
        return ""
    return (f" Reward rule: {html.escape(str(sp_cfg['reward_rule']))}; prompts: "
            f"{html.escape(str(sp_cfg.get('prompt_format', '')))}.")


def build_report(workdir: str, output: str | None = None) -> str:
    """Write workdir/report.html (or `output`) and return its path."""
    if not workdir_fs.exists(workdir):
        raise UserError(f"workdir {workdir!r} does not exist")
    rows = read_metrics(workdir)
    tasks = read_tasks(workdir)
    solves = read_solves(workdir)
    if not rows and not tasks:
        raise UserError(f"workdir {workdir!r} has no metrics.jsonl or tasks.jsonl; "
                        "run `azr-jax train` there first")
    plots = []
    for title, keys in PLOTS:
        series = _series(rows, keys)
        if series:
            plots.append(svg_plot(title, series))
    passk, dashed = passk_curves(rows)  # after the held-out probe's accuracy
    if passk:
        plots.insert(min(1, len(plots)), svg_plot(PASSK_TITLE, passk, xlabel="k", dashed=dashed))
    config = ""  # the saved config.json text, shown at the end
    cfg_path = workdir_fs.join(workdir, CONFIG_FILE)
    if workdir_fs.exists(cfg_path):
        config = workdir_fs.read_text(cfg_path)
    types = sorted({t.get("type", "") for t in tasks + solves})
    n_valid = sum(bool(t.get("valid")) for t in tasks)
    n_passed = sum(s.get("outcome") == "passed" for s in solves)
    outcomes = sorted({str(s.get("outcome", "")) for s in solves})
    task_head = _header("tasks", [("step", 1), ("type", 1), ("valid", 1), ("solve rate", 1),
                                  ("proposer reward", 1), ("program", 0), ("input(s)", 0),
                                  ("output(s)", 0), ("error / message", 0), ("raw response", 0)])
    solve_head = _header("solves", [("step", 1), ("type", 1), ("outcome", 1), ("reward", 1),
                                    ("prompt", 0), ("answer / parse error", 0), ("raw response", 0)])
    doc = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>AZR run report</title>
<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>
<h1>AZR run: {html.escape(workdir_fs.absolute(workdir))}</h1>
<p>{len(update_rows(rows))} logged steps; {len(tasks)} proposed tasks, {n_valid} valid; {len(solves)} solver
rollouts, {n_passed} correct.{_rules(config)}</p>
<h2>Training curves</h2><div class="plots">{''.join(plots) or '<p>No metrics yet.</p>'}</div>
<h2>Last step</h2>{_summary_table(rows)}
<h2>Proposed tasks</h2>
{_controls("tasks", "programs, inputs", types,
           [("", "valid and invalid"), ("1", "valid"), ("0", "invalid")], len(tasks))}
<table id="tasks">{task_head}<tbody>{_task_rows(tasks)}</tbody></table>
<h2>Solver rollouts</h2>
{_controls("solves", "prompts, answers", types,
           [("", "every outcome")] + [(o, o) for o in outcomes], len(solves))}
<table id="solves">{solve_head}<tbody>{_solve_rows(solves)}</tbody></table>
<h2>Config</h2><pre>{html.escape(config)}</pre></body></html>"""
    path = output or workdir_fs.join(workdir, REPORT_FILE)
    workdir_fs.write_text_atomic(path, doc)
    return path
