"""Units, compact numbers and tables fitted to the terminal, for what the ``codesign``
commands print (:mod:`codesign.cli.format` and the command modules).

Tables for people (``pareto``, ``compare``, ``recommend``) fit the terminal's width: columns
are taken in order of priority and whole columns that do not fit are left out, named in one
line below the table (``--wide`` shows all); no cell is cut and no row wraps.
"""

from __future__ import annotations

import io
import math
import sys
from dataclasses import dataclass
from typing import Any

# ------------------------------------------------------------------ units and compact numbers

SHORT_UNITS: dict[str, str] = {
    "die_area_mm2": "mm²", "silicon_mm2": "mm²", "n_compute_dies": "dies",
    "cost_per_mtoken_usd": "USD/1e6 tokens", "cost_per_goodput_mtoken_usd": "USD/1e6 tokens",
    "goodput_cost_per_mtoken_usd": "USD/1e6 tokens", "tokens_per_s_per_mw": "tokens/s/MW",
    "tokens_per_s_per_gw": "tokens/s/GW", "energy_per_token_j": "J/token",
    "candidates": "mappings", "feasible_candidates": "mappings", "clock_fraction": "of peak",
    "decode_flops_per_byte": "FLOP/byte", "scaleup_gbps": "GB/s", "scaleup_link_gbps": "GB/s",
    "scaleout_gbps": "Gbit/s", "port_gbps": "Gbit/s", "host_link_gbs": "GB/s",
    "hbm_tbps": "TB/s", "hbm_stacks": "stacks", "tflops_bf16": "TFLOP/s",
    "tflops_fp8": "TFLOP/s", "tflops_fp4": "TFLOP/s", "tflops_fp32": "TFLOP/s",
    "peak_tflops_bf16": "TFLOP/s", "price_usd": "USD", "macs_per_unit": "MAC/cycle",
    "clock_ghz": "GHz", "process_nm": "nm", "scaleup_domain": "chips",
    "chips_per_rack": "chips", "interruptions_per_day": "/day", "train_days": "days",
    "goodput_train_days": "days", "spare_chips": "chips", "idle_chips": "chips",
    "host_w_per_chip": "W/chip", "network_w_per_chip": "W/chip", "cooling_w_per_chip": "W/chip",
    "host_usd_per_chip": "USD/chip", "network_usd_per_chip": "USD/chip",
    "facility_usd_per_chip": "USD/chip", "host_memory_gb_per_chip": "GB/chip",
    "memory_gb_per_chip": "GB", "rack_power_kw": "kW", "rack_limit_kw": "kW",
    "train_goodput_tokens_per_s": "tokens/s", "goodput_tokens_per_s": "tokens/s",
    "output_tokens_per_s": "tokens/s", "goodput_tokens_per_joule": "tokens/J",
    "cooling_ok": "1 = fits", "disaggregated": "1 = yes", "mtbf_h": "h",
    "request_latency_s_at_percentile": "s", "kv_transfer_s": "s",
}
"""Short units of metric and answer keys, for table headers and summaries (the long ones of
:data:`codesign.model.metrics.METRICS` explain more than a header has room for)."""

_SUFFIX_UNITS = (("_per_day", "/day"), ("_rps", "requests/s"), ("_mm2", "mm²"), ("_usd", "USD"),
                 ("_kw", "kW"), ("_mw", "MW"), ("_gbps", "Gbit/s"), ("_gbs", "GB/s"),
                 ("_gb", "GB"), ("_w", "W"), ("_j", "J"), ("_s", "s"), ("_h", "h"),
                 ("_chips", "chips"), ("_fraction", "fraction"), ("_share", "fraction"),
                 ("_utilisation", "fraction"))


def unit_of(key: str, parent: str = "") -> str:
    """The short unit of ``key`` (a metric, a search parameter or a key of ``evaluate``'s
    answer), else the unit its parent dict's key names (``breakdown_s`` -> ``s``); "" for
    none (counts, names, flags)."""
    from codesign.model.metrics import METRICS

    if key in SHORT_UNITS:
        return SHORT_UNITS[key]
    unit = METRICS.get(key, ("",))[0].split(" (")[0]
    if unit and len(unit) <= 16 and " of " not in unit:
        return unit
    for suffix, name in _SUFFIX_UNITS:
        if key.endswith(suffix):
            return name
    try:
        from codesign.search.design import DESIGN_PARAMETERS
    except ImportError:  # pragma: no cover - the search layer is part of the package
        return ""
    if key in DESIGN_PARAMETERS:
        return DESIGN_PARAMETERS[key].unit.replace("count", "")
    return unit_of(parent) if parent else ""


_SI = ("", "k", "M", "G", "T", "P", "E")


def num(value: Any) -> str:
    """``value`` for a narrow cell: 4 significant digits, SI suffixes from 10,000 on
    (``10.31M``), whole numbers below a million exact with thousands separators (``16,384``),
    ``n/a`` for NaN, "" for None; strings as they are."""
    if value is None:
        return ""
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) < 1_000_000 else si(float(value))
    if not isinstance(value, float):
        return str(value)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value.is_integer() and abs(value) < 1_000_000:
        return f"{int(value):,}"
    if abs(value) >= 10_000:
        return si(value)
    if abs(value) >= 999.95:  # 4 significant digits are the whole number: 1,204
        return f"{round(value):,}"
    return f"{value:.4g}"


def si(value: float) -> str:
    """``value`` (at least 1,000 in magnitude) with an SI suffix, 4 significant digits."""
    k = min(int(math.log10(abs(value)) // 3), len(_SI) - 1)
    text = f"{value / 1000.0 ** k:.4g}"
    if abs(float(text)) >= 1000 and k + 1 < len(_SI):  # 999,950 rounds to 1000k: 1M
        k += 1
        text = f"{value / 1000.0 ** k:.4g}"
    return text + _SI[k]


def with_unit(value: Any, unit: str) -> str:
    """``num(value)`` followed by its unit (nothing after n/a or an empty value)."""
    text = num(value)
    return f"{text} {unit}" if unit and text not in ("", "n/a") else text


def seconds(value: float | None) -> str:
    """A duration with the unit that reads best: ``3.402 s``, ``112.4 ms``, ``9.8 µs``."""
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return num(value)
    a = abs(value)
    if a == 0 or a >= 1.0:
        return f"{num(float(value))} s"
    if a >= 1e-3:
        return f"{value * 1e3:.4g} ms"
    return f"{value * 1e6:.4g} µs"


# ------------------------------------------------------------------ tables fitted to a width


@dataclass
class Column:
    """One column of a fitted table: ``title`` (its name; a fitted header breaks it after
    "_" or at spaces), ``unit`` (the header's last line), the cells (strings) and how the
    note below the table names it when it is left out."""

    title: str
    cells: list[str]
    unit: str = ""
    justify: str = "right"
    style: str | None = None
    name: str = ""
    max_lines: int = 2

    def label(self) -> str:
        """How the note below a fitted table names this column."""
        return self.name or self.title


def _break_title(title: str, width: int, max_lines: int) -> list[str]:
    """``title`` in at most ``max_lines`` lines of the least width not below ``width``,
    broken after "_" or at a space (never inside a word)."""
    import re

    tokens = [t for t in re.split(r"(?<=_)|(?= )", title) if t]
    if not tokens or cell_len(title) <= width:
        return [title]
    target = max(width, *(cell_len(t.strip()) for t in tokens))
    while True:
        lines: list[str] = []
        for tok in tokens:
            if lines and cell_len((lines[-1] + tok).strip()) <= target:
                lines[-1] += tok
            else:
                lines.append(tok.lstrip() if lines else tok)
        if len(lines) <= max_lines:
            return [line.strip() for line in lines]
        target += 1


def cell_len(text: str) -> int:
    """Terminal columns of ``text`` (wide characters count twice)."""
    from rich.cells import cell_len as _cell_len

    return _cell_len(text)


def _header(col: Column, fitted: bool) -> str:
    from rich.markup import escape

    unit = col.unit
    if fitted and unit and _says_unit(col.title, unit):
        unit = ""  # hbm_stacks, n_chips, sram_mb: the name says it
    body = max([cell_len(c) for c in col.cells] + [cell_len(unit), 1])
    lines = ([col.title] if not fitted or cell_len(col.title) < body + 3
             else _break_title(col.title, body, col.max_lines))
    return escape("\n".join([*lines, unit] if unit else lines))


def _says_unit(title: str, unit: str) -> bool:
    """Whether the name ``title`` ends in its unit (``sram_mb`` and MB)."""
    def norm(text: str) -> str:
        return text.lower().replace("²", "2").replace("/", "_")

    return norm(title).endswith("_" + norm(unit))


def build_table(columns: list[Column], fitted: bool) -> Any:
    """A rich table of ``columns``; ``fitted``: headers broken to the width of their cells,
    no blank edge lines (what :func:`fit_columns` measures)."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=not fitted, pad_edge=not fitted,
                  collapse_padding=fitted)
    for col in columns:
        table.add_column(_header(col, fitted), justify=col.justify,  # type: ignore[arg-type]
                         style=col.style, vertical="bottom", no_wrap=True)
    for i in range(len(columns[0].cells) if columns else 0):
        table.add_row(*(col.cells[i] for col in columns))
    return table


def table_width(columns: list[Column], fitted: bool = True) -> int:
    """Terminal columns the table of ``columns`` takes at its natural width."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=100_000, color_system=None)
    return console.measure(build_table(columns, fitted)).maximum


def fit_columns(columns: list[Column], width: int) -> tuple[list[Column], list[Column]]:
    """The columns that fit ``width`` terminal columns, chosen in the order given (their
    priority; the first is always kept) and shown in that order, and those left out."""
    kept, left = columns[:1], []
    for col in columns[1:]:
        if table_width([*kept, col]) <= width:
            kept.append(col)
        else:
            left.append(col)
    return kept, left


def left_out_note(left: list[Column], width: int, wide_hint: str) -> str:
    """One line of at most ``width`` columns (where one can be) naming the columns left out
    (as many names as fit, then how many more) and the flag that shows them all."""
    if not left:
        return ""
    tail = f"; {wide_hint} shows all"
    names = [c.label() for c in left]
    for n in range(len(names), 0, -1):
        more = f" and {len(names) - n} more" if n < len(names) else ""
        text = f"left out to fit: {', '.join(names[:n])}{more}{tail}"
        if cell_len(text) <= width:
            return text
    return f"{len(left)} column{'s' if len(left) > 1 else ''} left out{tail}"


def render_text(renderable: Any, width: int) -> str:
    """``renderable`` as plain text at ``width`` columns, lines without trailing blanks."""
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=width, highlight=False, color_system=None).print(renderable)
    return "".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines())


def terminal_width() -> int | None:
    """Columns of the terminal stdout is (``COLUMNS`` wins); None when stdout is piped."""
    import shutil

    if not sys.stdout.isatty():
        return None
    return max(20, shutil.get_terminal_size((100, 24)).columns)


def print_fitted(columns: list[Column], title: str, notes: list[str], width: int | None,
                 wide_hint: str) -> None:
    """Print ``title``, the table of ``columns`` and ``notes``: fitted to ``width`` terminal
    columns (whole columns left out, named in one line below), or every column at its
    natural width when ``width`` is None (``--wide``)."""
    from rich.console import Console

    if width is None:
        kept, left = columns, []
    else:
        kept, left = fit_columns(columns, width)
    console = Console(highlight=False, width=100_000 if width is None else width,
                      soft_wrap=width is None)
    if title:
        console.print(title, markup=False)
    table = build_table(kept, fitted=width is not None)
    if width is None:
        sys.stdout.write(render_text(table, table_width(kept, fitted=False)))
    else:
        console.print(table)
    note = left_out_note(left, width or 0, wide_hint)
    for line in ([note] if note else []) + notes:
        console.print(line, markup=False)
