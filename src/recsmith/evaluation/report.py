"""A self-contained HTML report comparing recipes: a leaderboard and its plots (``recsmith evaluate --report``).

The page has no external CSS, JavaScript, fonts or images: styles are inline, and the plots are SVG drawn by
matplotlib (imported lazily, on the non-interactive Agg canvas, without touching pyplot's global backend) and
embedded in the page. A Content-Security-Policy meta tag forbids the browser from fetching anything.

Input shape
-----------
``results`` is a list with one dict per recipe (:func:`recsmith.evaluation.analysis.report_entry` builds one from
an ``evaluate_recipes(..., details=True)`` row). Only ``recipe`` and ``metrics`` are required::

    {
        "recipe": "ease",                                   # str, shown escaped
        "metrics": {                                        # name -> mean, or mean with a confidence interval
            "ndcg@10": {"mean": 0.31, "ci_low": 0.29, "ci_high": 0.33},
            "coverage@10": 0.12,
        },
        "fit_seconds": 1.8,                                 # optional: leaderboard column, fit-time plot
        "curve": {"ndcg": {1: 0.35, 5: 0.32, 10: 0.31}},    # optional: metric base -> {k: mean}
        "segments": {                                       # optional: per user segment (analysis.user_segments)
            "light": {"mean": 0.21, "count": 314, "min_history": 1, "max_history": 24},  # *_history optional
            "medium": {"mean": 0.30, "count": 313},
            "heavy": {"mean": 0.41, "count": 316},
        },
        "segment_metric": "ndcg@10",                        # optional: what the segment means are of
        "popularity_deciles": [0.0, 0.0, ..., 0.52],        # optional: 10 shares, decile 1 (least popular) first
        "decile_k": 10,                                     # optional: recommendations per user counted
        "calibration": [                                    # optional (evaluate --task binary): reliability bins
            {"mean_predicted": 0.05, "fraction_positive": 0.08, "count": 912},   # low / high edges optional
        ],
        "calibrated": "platt on training pairs",            # optional: how scores became probabilities
    }

Keys of the ``curve`` dicts may be ints or digit strings (as after a JSON round trip). ``context`` is a dict of
labels to values (protocol, dataset, seed, k, ...) shown at the top in its order. A plot whose inputs no result
has is left out; a result lacking a piece is left out of that plot only.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from recsmith import __version__
from recsmith.atomic import atomic_file
from recsmith.errors import ConfigError
from recsmith.evaluation.metrics import DEFINITIONS, RATING_METRICS

SEGMENT_ORDER = ("light", "medium", "heavy")
SEGMENT_COLOURS = ("#9ecae1", "#4292c6", "#08306b")
LOWER_IS_BETTER = frozenset(RATING_METRICS) | {"log_loss"}
MAX_LABEL = 32  # characters of a recipe name shown inside a plot (the table shows it whole)

_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0 auto; padding: 1.5rem 2rem 3rem; max-width: 1400px; color: #1b1f24; background: #fff;
       line-height: 1.45; }
h1 { font-size: 1.6rem; margin: 0 0 .75rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .6rem; border-bottom: 1px solid #d8dee4; padding-bottom: .3rem; }
dl.context { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1.2rem; margin: 0;
             font-size: .92rem; }
dl.context dt { font-weight: 600; color: #57606a; }
dl.context dd { margin: 0; overflow-wrap: anywhere; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: .9rem; font-variant-numeric: tabular-nums; }
th, td { padding: .35rem .7rem; border-bottom: 1px solid #e4e8ec; text-align: right; white-space: nowrap; }
th { background: #f4f6f8; font-weight: 600; position: sticky; top: 0; }
th.primary, td.primary { background: #eef5ff; }
td.recipe, th.recipe { text-align: left; white-space: normal; overflow-wrap: break-word; min-width: 7rem;
                       max-width: 22rem; }
td.ci { color: #57606a; }
td.best { font-weight: 700; }
tbody tr:hover td { background: #f8fafc; }
p.note { color: #57606a; font-size: .85rem; margin: .4rem 0 0; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 600px), 1fr)); gap: 1.5rem; }
figure { margin: 0; border: 1px solid #e4e8ec; border-radius: 6px; padding: .75rem; background: #fff; }
figure.wide { grid-column: 1 / -1; overflow-x: auto; }
figure.wide svg { min-width: 860px; }
figure svg { display: block; width: 100%; height: auto; }
figcaption { font-size: .85rem; color: #57606a; margin-top: .4rem; }
figcaption b { color: #1b1f24; }
footer { margin-top: 2.5rem; font-size: .8rem; color: #8c959f; }
"""


# ------------------------------------------------------------------------------------------------ input checks
def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a number, got {value!r}") from None


def _metric(value: Any, where: str) -> tuple[float, float | None, float | None]:
    """(mean, ci_low, ci_high) of a metric given as a number or a dict."""
    if isinstance(value, Mapping):
        if "mean" not in value:
            raise ConfigError(f"{where} is a dict without 'mean'; give {{'mean', 'ci_low', 'ci_high'}} or a number")
        low, high = value.get("ci_low"), value.get("ci_high")
        return (_number(value["mean"], where), None if low is None else _number(low, f"{where} ci_low"),
                None if high is None else _number(high, f"{where} ci_high"))
    return _number(value, where), None, None


def _check_results(results: Any) -> list[Mapping[str, Any]]:
    if isinstance(results, Mapping) or not isinstance(results, Sequence) or not results:
        raise ConfigError("results must be a non-empty list of dicts, one per recipe (see recsmith.evaluation.report)")
    for i, result in enumerate(results):
        if not isinstance(result, Mapping) or not isinstance(result.get("recipe"), str):
            raise ConfigError(f"results[{i}] must be a dict with a 'recipe' name (str), got {result!r:.80}")
        if not isinstance(result.get("metrics", {}), Mapping):
            raise ConfigError(f"results[{i}] ({result['recipe']!r}): 'metrics' must be a dict of name to value")
        deciles = result.get("popularity_deciles")
        if deciles is not None and (isinstance(deciles, str | Mapping) or not hasattr(deciles, "__len__")
                                    or len(deciles) != 10):
            raise ConfigError(f"results[{i}] ({result['recipe']!r}): popularity_deciles must hold 10 shares")
    return list(results)


def _metrics(result: Mapping[str, Any]) -> dict[str, tuple[float, float | None, float | None]]:
    return {str(name): _metric(value, f"{result['recipe']!r} metric {name!r}")
            for name, value in (result.get("metrics") or {}).items()}


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _lower_is_better(name: str) -> bool:
    return name.split("@")[0] in LOWER_IS_BETTER


# ------------------------------------------------------------------------------------------------ html pieces
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: float | None, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if _finite(value) else "—"


def _seconds(value: float | None) -> str:
    if not _finite(value):
        return "—"
    return f"{value:.3g}" if value < 10 else f"{value:,.1f}"


def _context_html(context: Mapping[str, Any] | None) -> str:
    if not context:
        return ""
    rows = []
    for key, value in context.items():
        text = value if isinstance(value, str | int | float) else json.dumps(value, default=str)
        rows.append(f"<dt>{_e(key)}</dt><dd>{_e(text)}</dd>")
    return f'<dl class="context">{"".join(rows)}</dl>'


def _leaderboard(ordered: list[Mapping[str, Any]], primary: str, confidence: float,
                 definitions: Mapping[str, str] | None = None) -> str:
    parsed = [_metrics(result) for result in ordered]
    names: list[str] = []
    for metrics in parsed:
        names += [name for name in metrics if name not in names]
    names.sort(key=lambda name: name != primary)  # primary first, the rest in first-seen order
    with_ci = {name for metrics in parsed for name, (_, low, high) in metrics.items() if _finite(low) or _finite(high)}
    has_fit = any("fit_seconds" in result for result in ordered)
    best: dict[str, float] = {}
    for name in names:
        values = [metrics[name][0] for metrics in parsed if name in metrics and _finite(metrics[name][0])]
        if values:
            best[name] = min(values) if _lower_is_better(name) else max(values)
    ci_label = f"{confidence * 100:g} % CI"
    head = ['<th scope="col">#</th>', '<th scope="col" class="recipe">recipe</th>']
    for name in names:
        cls = ' class="primary"' if name == primary else ""
        arrow = " ↓" if _lower_is_better(name) else ""
        head.append(f'<th scope="col"{cls}>{_e(name)}{arrow}</th>')
        if name in with_ci:
            head.append(f'<th scope="col"{cls}>{_e(name)} {_e(ci_label)}</th>')
    if has_fit:
        head.append('<th scope="col">fit (s)</th>')
    body = []
    for rank, (result, metrics) in enumerate(zip(ordered, parsed, strict=True), start=1):
        cells = [f"<td>{rank}</td>", f'<td class="recipe">{_e(result["recipe"])}</td>']
        for name in names:
            mean, low, high = metrics.get(name, (None, None, None))
            classes = ["primary"] if name == primary else []
            if _finite(mean) and best.get(name) == mean:
                classes.append("best")
            cls = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{cls}>{_fmt(mean)}</td>")
            if name in with_ci:
                interval = f"[{_fmt(low)}, {_fmt(high)}]" if _finite(low) or _finite(high) else "—"
                ci_cls = "ci primary" if name == primary else "ci"
                cells.append(f'<td class="{ci_cls}">{interval}</td>')
        if has_fit:
            fit = result.get("fit_seconds")
            cells.append(f"<td>{_seconds(None if fit is None else _number(fit, 'fit_seconds'))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    direction = "lower" if _lower_is_better(primary) else "higher"
    note = (f"Sorted by <b>{_e(primary)}</b> ({direction} is better); the best value of each metric is in bold."
            + (f" {_e(ci_label)}: " + ("bootstrap confidence interval, the evaluated users resampled, as given."
                                       if definitions is not None else
                                       "confidence interval of the mean over the evaluated users, as given.")
               if with_ci else ""))
    return (f'<div class="table-wrap"><table><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div><p class="note">{note}</p>'
            f'{_definitions_html(names, definitions)}')


def _definitions_html(names: Sequence[str], definitions: Mapping[str, str] | None = None) -> str:
    """What each shown metric is (:data:`~recsmith.evaluation.metrics.DEFINITIONS`), both recalls when one is;
    or, for other metrics (the classification ones), the ``definitions`` given, over all the held-out pairs."""
    if definitions is not None:
        given = [f"<b>{_e(name)}</b>: {_e(definitions[name])}" for name in names if name in definitions]
        return (f'<p class="note definitions">Metrics (over all the held-out pairs): {"; ".join(given)}.</p>'
                if given else "")
    shown = list(dict.fromkeys(name.split("@")[0] for name in names))
    bases = list(shown)
    if "recall" in bases or "recall_capped" in bases:  # say which recall is which, beside each other
        at = min(i for i, base in enumerate(bases) if base in ("recall", "recall_capped"))
        bases = [base for base in bases if base not in ("recall", "recall_capped")]
        bases[at:at] = ["recall", "recall_capped"]
    items = [f"<b>{_e(base)}@k</b>: {_e(DEFINITIONS[base])}" + ("" if base in shown else " (not in this table)")
             for base in bases if base in DEFINITIONS]
    if not items:
        return ""
    return f'<p class="note definitions">Metrics (means over the evaluated users): {"; ".join(items)}.</p>'


def _figure_html(svg: str, caption: str, *, wide: bool = False) -> str:
    cls = ' class="wide"' if wide else ""
    return f"<figure{cls}>{svg}<figcaption>{caption}</figcaption></figure>"


# ------------------------------------------------------------------------------------------------ plots
def _mpl() -> Any:
    """matplotlib, imported on first use (``import recsmith`` stays light)."""
    import matplotlib

    return matplotlib


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)  # non-interactive; no pyplot state, no global backend switch
    return figure


def _plot_text(text: str) -> str:
    """A recipe name made safe for matplotlib: ``$`` would start mathtext; long names are cut."""
    short = text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"
    return short.replace("$", r"\$")  # matplotlib shows an escaped "\$" as "$" and leaves other backslashes


def _svg(figure: Any, index: int, label: str) -> str:
    """The figure as an inline ``<svg>``: no XML prolog or metadata, no fixed size, ids unique to this figure."""
    buffer = io.StringIO()
    with _mpl().rc_context({"svg.fonttype": "none", "svg.hashsalt": f"recsmith-report-{index}"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, count=1, flags=re.S)
    svg = re.sub(r'^<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", svg, count=1)
    return svg.replace("<svg", f'<svg role="img" aria-label="{_e(label)}"', 1)


def _colours(n: int) -> list[Any]:
    cmap = _mpl().colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _legend(figure: Any, handles: list[Any], labels: list[str], title: str | None = None) -> None:
    # handles and labels given explicitly, so names starting with "_" are not dropped
    figure.legend(handles, labels, loc="outside right upper", title=title, frameon=False, fontsize=9)


def _curve_keys(curve: Mapping[Any, Any], where: str) -> list[tuple[int, float]]:
    points = []
    for k, value in curve.items():
        try:
            cut = int(k)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: curve cut-offs must be integers, got {k!r}") from None
        points.append((cut, _number(value, f"{where} at k={cut}")))
    return sorted(points)


def _plot_curves(ordered: list[Mapping[str, Any]], colours: list[Any], index: int) -> tuple[str, str, bool] | None:
    bases: list[str] = []
    for result in ordered:
        bases += [str(base) for base in (result.get("curve") or {}) if str(base) not in bases]
    if not bases:
        return None
    from matplotlib.ticker import NullFormatter, NullLocator

    figure = _new_figure(4.6 * len(bases) + 1.8, 4.0)
    axes = figure.subplots(1, len(bases), squeeze=False)[0]
    handles: dict[int, Any] = {}
    all_ks: set[int] = set()
    for axis, base in zip(axes, bases, strict=True):
        for i, result in enumerate(ordered):
            curve = (result.get("curve") or {}).get(base)
            if not curve:
                continue
            points = _curve_keys(curve, f"{result['recipe']!r} curve {base!r}")
            ks, values = zip(*points, strict=True)
            all_ks.update(ks)
            (line,) = axis.plot(ks, values, marker="o", markersize=4, linewidth=1.6, color=colours[i])
            handles.setdefault(i, line)
        axis.set_title(f"{base}@k", fontsize=11)
        axis.set_xlabel("k (recommendations per user)")
        axis.set_ylabel(f"mean {base}@k")
        if len(all_ks) > 1 and min(all_ks) > 0 and max(all_ks) / min(all_ks) >= 10:
            axis.set_xscale("log")
        ticks = sorted(all_ks)
        axis.set_xticks(ticks, [str(k) for k in ticks])
        axis.xaxis.set_minor_locator(NullLocator())
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
    order = sorted(handles)
    _legend(figure, [handles[i] for i in order], [_plot_text(ordered[i]["recipe"]) for i in order])
    caption = ("<b>Metric vs k.</b> Mean over the evaluated users at each cut-off k; one line per recipe "
               "(k on a log scale when it spans a factor of 10 or more).")
    return _svg(figure, index, "metric versus k"), caption, len(bases) > 1


def _plot_segments(ordered: list[Mapping[str, Any]], index: int) -> tuple[str, str, bool] | None:
    rows = [(result, result["segments"]) for result in ordered if result.get("segments")]
    if not rows:
        return None
    import numpy as np

    labels = [name for name in SEGMENT_ORDER if any(name in segments for _, segments in rows)]
    labels += sorted({str(name) for _, segments in rows for name in segments} - set(labels))
    metric = next((str(r["segment_metric"]) for r, _ in rows if r.get("segment_metric")), "per-user metric")
    n = len(rows)
    wide = n > 6
    figure = _new_figure(max(6.4, 0.75 * n + 2.0) if wide else 6.4, 4.2)
    axis = figure.add_subplot()
    width = 0.8 / len(labels)
    x = np.arange(n)
    handles = []
    for j, name in enumerate(labels):
        means = [_number(s[name]["mean"], f"{r['recipe']!r} segment {name!r}") if name in s else np.nan
                 for r, s in rows]
        colour = SEGMENT_COLOURS[j] if j < len(SEGMENT_COLOURS) else _colours(len(labels))[j]
        bars = axis.bar(x + (j - (len(labels) - 1) / 2) * width, means, width * 0.92, color=colour)
        handles.append(bars)
        if n * len(labels) <= 18:
            axis.bar_label(bars, fmt="%.2f", fontsize=7, padding=1.5, color="#333333")
    legend_labels = []
    for name in labels:
        entries = [s[name] for _, s in rows if name in s]
        text = name
        counts = {entry.get("count") for entry in entries}
        history = {(entry.get("min_history"), entry.get("max_history")) for entry in entries}
        details = []
        if len(history) == 1 and None not in next(iter(history)):
            low, high = next(iter(history))
            details.append(f"{int(low)}–{int(high)} items" if low != high else f"{int(low)} items")
        if len(counts) == 1 and None not in counts:
            details.append(f"{int(next(iter(counts))):,} users")
        if details:
            text += f"\n{', '.join(details)}"
        legend_labels.append(text)
    axis.set_xticks(x, [_plot_text(r["recipe"]) for r, _ in rows])
    if n > 5 or sum(len(_plot_text(r["recipe"])) for r, _ in rows) > 60:
        axis.tick_params(axis="x", labelrotation=25)
        for label in axis.get_xticklabels():
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")
    axis.set_ylabel(f"mean {_plot_text(metric)}")
    axis.set_ylim(bottom=0)
    axis.margins(y=0.1)
    axis.grid(True, axis="y", alpha=0.3)
    figure.legend(handles, legend_labels, loc="outside upper center", ncols=min(len(labels), 3), frameon=False,
                  fontsize=8.5, handlelength=1.2, columnspacing=1.2)
    caption = (f"<b>By user segment.</b> Mean {_e(metric)} of light, medium and heavy users, grouped by recipe: the "
               "evaluated users split into terciles of training-history length (equal lengths kept together; "
               "the legend gives each segment's history lengths and size).")
    return _svg(figure, index, "metric by user segment"), caption, wide


def _plot_popularity(ordered: list[Mapping[str, Any]], colours: list[Any], index: int,
                     reference: Sequence[float] | None) -> tuple[str, str, bool] | None:
    picked = [(i, result) for i, result in enumerate(ordered) if result.get("popularity_deciles") is not None]
    if not picked:
        return None
    from matplotlib.ticker import FuncFormatter

    figure = _new_figure(6.4, 4.0)
    axis = figure.add_subplot()
    deciles = list(range(1, 11))
    handles, labels = [], []
    if reference is not None:
        (line,) = axis.plot(deciles, [_number(v, "reference_deciles") for v in reference], color="#555555",
                            linestyle="--", linewidth=1.4, marker="s", markersize=3)
        handles.append(line)
        labels.append("training interactions")
    for i, result in picked:
        shares = [_number(v, f"{result['recipe']!r} popularity_deciles") for v in result["popularity_deciles"]]
        (line,) = axis.plot(deciles, shares, color=colours[i], marker="o", markersize=4, linewidth=1.6)
        handles.append(line)
        labels.append(_plot_text(result["recipe"]))
    axis.set_xticks(deciles, [str(d) for d in deciles])
    axis.set_xlabel("item popularity decile (1 = least popular tenth, 10 = most popular)")
    every = [y for line in handles for y in line.get_ydata() if _finite(y)]
    positive = [y for y in every if y > 0]
    skewed = bool(positive) and max(positive) / min(positive) >= 100
    threshold = 10.0 ** math.floor(math.log10(max(min(positive), 1e-4))) if skewed else 0.0
    if skewed:  # most mass on the top deciles: a symmetric log axis keeps the small shares visible
        axis.set_yscale("symlog", linthresh=threshold, linscale=0.5)
        axis.set_ylim(0, 1.3)
    else:
        axis.set_ylim(bottom=0)
    axis.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{100 * y:.4g}%"))
    axis.set_ylabel("share of recommended items" + (" (log scale)" if skewed else ""))
    axis.grid(True, alpha=0.3)
    _legend(figure, handles, labels)
    cuts = {result.get("decile_k") for _, result in picked}
    top = f"top {int(next(iter(cuts)))} " if len(cuts) == 1 and None not in cuts else ""
    caption = (f"<b>Popularity bias.</b> Share of all {top}recommendations falling in each item-popularity decile "
               "(items ranked by training interactions, equal counts by item index, so that each decile is a tenth of "
               "the catalogue). Mass on the right means the recipe "
               "favours popular items"
               + ("; the dashed line is the spread of the training interactions" if reference is not None else "")
               + (f". The axis is logarithmic above {100 * threshold:g} % and linear below it, so that small shares "
                  "stay visible." if skewed else "."))
    return _svg(figure, index, "popularity bias"), caption, False


_LABEL_SPOTS = (  # (dx, dy) in points, horizontal and vertical alignment: right, left, then the diagonals, above, below
    (7, 0, "left", "center"), (-7, 0, "right", "center"), (6, 7, "left", "bottom"), (6, -7, "left", "top"),
    (-6, 7, "right", "bottom"), (-6, -7, "right", "top"), (0, 9, "center", "bottom"), (0, -9, "center", "top"),
    (7, 16, "left", "bottom"), (7, -16, "left", "top"), (-7, 16, "right", "bottom"), (-7, -16, "right", "top"),
)


def _label_points(figure: Any, axis: Any, points: list[tuple[float, float, float | None, float | None]],
                  texts: list[str]) -> None:
    """Name each point, choosing for each label the first spot around it that overlaps no placed label, marker or
    error bar (else the spot overlapping least)."""
    from matplotlib.transforms import Bbox

    figure.canvas.draw()  # settle the layout so that display coordinates are final enough to compare
    renderer = figure.canvas.get_renderer()
    to_display = axis.transData.transform
    pad = renderer.points_to_pixels(2.5)
    obstacles = []
    for x, y, low, high in points:
        (px, py), = to_display([(x, y)])
        obstacles.append(Bbox.from_extents(px - pad * 2, py - pad * 2, px + pad * 2, py + pad * 2))
        if _finite(low) and _finite(high):
            (_, y0), (_, y1) = to_display([(x, low), (x, high)])
            obstacles.append(Bbox.from_extents(px - pad * 1.5, min(y0, y1), px + pad * 1.5, max(y0, y1)))
    frame = axis.get_window_extent(renderer)

    def overlap(box: Any) -> float:
        total = 0.0
        for other in obstacles:
            width = min(box.x1, other.x1) - max(box.x0, other.x0)
            height = min(box.y1, other.y1) - max(box.y0, other.y0)
            total += max(width, 0.0) * max(height, 0.0)
        outside = box.width * box.height - max(min(box.x1, frame.x1) - max(box.x0, frame.x0), 0.0) * max(
            min(box.y1, frame.y1) - max(box.y0, frame.y0), 0.0)
        return total + 2 * outside

    order = sorted(range(len(points)), key=lambda j: -points[j][1])  # top to bottom
    for j in order:
        x, y = points[j][0], points[j][1]
        best = None
        for dx, dy, ha, va in _LABEL_SPOTS:
            label = axis.annotate(texts[j], (x, y), textcoords="offset points", xytext=(dx, dy), ha=ha, va=va,
                                  fontsize=8.5, color="#222222")
            box = label.get_window_extent(renderer).padded(1.0)
            cost = overlap(box)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, label, box)
            else:
                label.remove()
            if cost == 0:
                break
        assert best is not None
        obstacles.append(best[2])


def _plot_fit_time(ordered: list[Mapping[str, Any]], colours: list[Any], primary: str,
                   index: int) -> tuple[str, str, bool] | None:
    points = []
    for i, result in enumerate(ordered):
        metrics = _metrics(result)
        if result.get("fit_seconds") is None or primary not in metrics or not _finite(metrics[primary][0]):
            continue
        points.append((i, _number(result["fit_seconds"], f"{result['recipe']!r} fit_seconds"), *metrics[primary]))
    if not points:
        return None
    floor = 1e-4
    seconds = [max(p[1], floor) for p in points]
    log = len(points) > 1 and max(seconds) / min(seconds) >= 20
    figure = _new_figure(6.4, 4.0)
    axis = figure.add_subplot()
    for (i, _, mean, low, high), x in zip(points, seconds, strict=True):
        if _finite(low) and _finite(high):
            axis.errorbar([x], [mean], yerr=[[mean - low], [high - mean]], color=colours[i], capsize=3, linewidth=1)
        axis.scatter([x], [mean], color=colours[i], s=46, zorder=3, edgecolors="white", linewidths=0.8)
    if log:
        axis.set_xscale("log")
    axis.margins(x=0.15, y=0.18)
    axis.set_xlabel("fit time (seconds" + (", log scale)" if log else ")"))
    axis.set_ylabel(_plot_text(primary))
    axis.grid(True, alpha=0.3)
    _label_points(figure, axis, [(x, p[2], p[3], p[4]) for p, x in zip(points, seconds, strict=True)],
                  [_plot_text(ordered[p[0]]["recipe"]) for p in points])
    better = "down" if _lower_is_better(primary) else "up"
    caption = (f"<b>Fit time vs accuracy.</b> {_e(primary)} against training time; {better} and to the left is better"
               + (" (bars: confidence intervals)" if any(_finite(p[3]) for p in points) else "")
               + (f"; times under {floor * 1000:g} ms are drawn at {floor * 1000:g} ms." if log else "."))
    return _svg(figure, index, "fit time versus accuracy"), caption, False


def _plot_calibration(ordered: list[Mapping[str, Any]], colours: list[Any], index: int
                      ) -> tuple[str, str, bool] | None:
    """The reliability diagram: per probability bin, the share of positives against the mean probability."""
    picked = [(i, result) for i, result in enumerate(ordered) if result.get("calibration")]
    if not picked:
        return None
    figure = _new_figure(6.4, 4.4)
    axis = figure.add_subplot()
    (diagonal,) = axis.plot([0, 1], [0, 1], color="#888888", linestyle="--", linewidth=1.2)
    handles, labels = [diagonal], ["perfectly calibrated"]
    for i, result in picked:
        where = f"{result['recipe']!r} calibration"
        if isinstance(result["calibration"], str | Mapping) or not isinstance(result["calibration"], Sequence):
            raise ConfigError(f"{where} must be a list of bins with mean_predicted and fraction_positive")
        points = []
        for number, entry in enumerate(result["calibration"]):
            if not isinstance(entry, Mapping) or "mean_predicted" not in entry or "fraction_positive" not in entry:
                raise ConfigError(f"{where}[{number}] must be a dict with mean_predicted and fraction_positive")
            points.append((_number(entry["mean_predicted"], f"{where}[{number}] mean_predicted"),
                           _number(entry["fraction_positive"], f"{where}[{number}] fraction_positive"),
                           _number(entry.get("count", 1), f"{where}[{number}] count")))
        points.sort()
        xs, ys, counts = zip(*points, strict=True) if points else ((), (), ())
        total = sum(counts) or 1.0
        (line,) = axis.plot(xs, ys, color=colours[i], linewidth=1.5)
        axis.scatter(xs, ys, color=colours[i], s=[12 + 260 * c / total for c in counts], zorder=3,
                     edgecolors="white", linewidths=0.6)
        handles.append(line)
        how = result.get("calibrated")
        labels.append(_plot_text(result["recipe"]) + (" (platt)" if isinstance(how, str) and "platt" in how else ""))
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_xlabel("mean predicted probability (bin)")
    axis.set_ylabel("fraction of positive pairs")
    axis.grid(True, alpha=0.3)
    _legend(figure, handles, labels)
    caption = ("<b>Calibration (reliability diagram).</b> The held-out pairs binned by predicted probability (ten "
               "equal-width bins): the share that is positive against the mean probability given; on the dashed "
               "diagonal a recipe is perfectly calibrated, below it over-confident. Marker area: the bin's share of "
               "the pairs. <i>(platt)</i>: scores calibrated by Platt scaling fitted on the training pairs.")
    return _svg(figure, index, "calibration reliability diagram"), caption, False


# ------------------------------------------------------------------------------------------------ public API
def render_report(results: Sequence[Mapping[str, Any]], *, title: str = "recsmith evaluation",
                  context: Mapping[str, Any] | None = None, primary: str | None = None,
                  reference_deciles: Sequence[float] | None = None, confidence: float = 0.95,
                  definitions: Mapping[str, str] | None = None) -> str:
    """The report as one HTML string (see :func:`write_report`)."""
    rows = _check_results(results)
    parsed = [_metrics(result) for result in rows]
    if primary is None:
        primary = next((name for metrics in parsed for name in metrics), None)
    if primary is None:
        raise ConfigError("no result has any metrics; give each result a 'metrics' dict")
    if not any(primary in metrics for metrics in parsed):
        known = sorted({name for metrics in parsed for name in metrics})
        raise ConfigError(f"primary metric {primary!r} is in no result; the results have {known}")
    if reference_deciles is not None and len(reference_deciles) != 10:
        raise ConfigError(f"reference_deciles must hold 10 shares, got {len(reference_deciles)}")
    sign = 1.0 if _lower_is_better(primary) else -1.0

    def sort_key(pair: tuple[Mapping[str, Any], dict[str, Any]]) -> tuple[bool, float]:
        mean = pair[1].get(primary, (None,))[0]
        return (not _finite(mean), sign * mean if _finite(mean) else 0.0)

    ordered = [result for result, _ in sorted(zip(rows, parsed, strict=True), key=sort_key)]
    colours = _colours(len(ordered))
    with _mpl().rc_context({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
                            "axes.spines.top": False, "axes.spines.right": False}):
        plots = [
            _plot_curves(ordered, colours, 0),
            _plot_segments(ordered, 1),
            _plot_popularity(ordered, colours, 2, reference_deciles),
            _plot_fit_time(ordered, colours, primary, 3),
            _plot_calibration(ordered, colours, 4),
        ]
    figures = "".join(_figure_html(svg, caption, wide=wide) for svg, caption, wide in filter(None, plots))
    plot_section = f'<section><h2>Plots</h2><div class="plots">{figures}</div></section>' if figures else ""
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="recsmith {_e(__version__)}">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{_e(title)}</h1>{_context_html(context)}</header>\n"
        f"<section><h2>Leaderboard</h2>{_leaderboard(ordered, primary, confidence, definitions)}</section>\n"
        f"{plot_section}\n"
        f"<footer>Generated by recsmith {_e(__version__)}.</footer>\n</body>\n</html>\n"
    )


def write_report(path: str | os.PathLike[str], results: Sequence[Mapping[str, Any]], *,
                 title: str = "recsmith evaluation", context: Mapping[str, Any] | None = None,
                 primary: str | None = None, reference_deciles: Sequence[float] | None = None,
                 confidence: float = 0.95, definitions: Mapping[str, str] | None = None) -> Path:
    """Write one self-contained HTML report comparing recipes, atomically.

    Parameters
    ----------
    path : path
        The ``.html`` file to write (parent folders are created). It is written to a temporary file beside it and
        moved into place with ``os.replace``, so readers see the old file or the whole new one.
    results : list of dict
        One dict per recipe, in the shape documented in :mod:`recsmith.evaluation.report`.
    title : str
        Page title and heading.
    context : dict, optional
        What was measured and how (protocol, dataset, seed, k, ...), shown at the top in order.
    primary : str, optional
        The metric the leaderboard is sorted by (descending; ascending for ``rmse``/``mae``) and the fit-time plot
        shows; default: the first metric of the first result.
    reference_deciles : sequence of 10 floats, optional
        Drawn as a dashed line on the popularity plot, e.g. ``analysis.interaction_deciles(train.matrix)``.
    confidence : float
        Level of the given intervals, for the column headings only (default 0.95: "95 % CI").
    definitions : dict of str to str, optional
        One line per metric name, shown under the leaderboard instead of the ranking metrics' definitions (the
        classification metrics give theirs: ``recsmith.evaluation.classification.DEFINITIONS``).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    ConfigError
        If ``results`` is empty or malformed, or ``primary`` is in no result.
    """
    text = render_report(results, title=title, context=context, primary=primary,
                         reference_deciles=reference_deciles, confidence=confidence, definitions=definitions)
    final = Path(path)
    with atomic_file(final) as tmp:  # fsynced, renamed into place, the folder fsynced
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o644)
    return final
