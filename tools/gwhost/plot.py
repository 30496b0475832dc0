"""`bench-day --plot FILE.png`: what happened, one panel per controller (matplotlib Agg).

Each panel: PV produced, house load, car power (+ charging, - discharging) and grid power
(+ import) in kW over the hours of the run, 30 s means; car SoC in % on the right axis
(with prices in the scenario also the import price in ct/kWh on that axis); grid outages
shaded (red: switch at grid, orange: islanded).
"""

import matplotlib as mpl

from gwhost import metrics as mx

mpl.use("Agg")  # before pyplot is imported (in plot_day): no display needed

BIN_S = 30


def _binned(rows, f):
    out, acc, n = [], 0.0, 0
    for r in rows:
        acc += f(r)
        n += 1
        if n == BIN_S:
            out.append(acc / n)
            acc, n = 0.0, 0
    if n:
        out.append(acc / n)
    return out


def _spans(rows, island):
    spans, start = [], None
    for r in rows:
        down = not r[mx.UP] and bool(r[mx.ISL]) == island
        if down and start is None:
            start = r[mx.T]
        elif not down and start is not None:
            spans.append((start, r[mx.T]))
            start = None
    if start is not None:
        spans.append((start, rows[-1][mx.T] + 1))
    return spans


def plot_day(path, scen, runs):
    """runs: {controller: rows}; writes a PNG to `path`."""
    import matplotlib.pyplot as plt

    names = list(runs)
    fig, axes = plt.subplots(len(names), 1, figsize=(14, 3.2 * len(names)), sharex=True,
                             squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        rows = runs[name]
        if not rows:
            continue
        hours = [h / 3600.0 for h in _binned(rows, lambda r: r[mx.T] + 0.5)]
        kw = [("PV produced", lambda r: r[mx.PV] - r[mx.CURT], "#e6a700"),
              ("house load", lambda r: r[mx.LOAD], "#555555"),
              ("car", lambda r: r[mx.EV], "#1f77b4"),
              ("grid (+import)", lambda r: r[mx.GRID], "#d62728")]
        if any(r[mx.BATT] for r in rows):
            kw.append(("home battery", lambda r: r[mx.BATT], "#2ca02c"))
        for label, f, color in kw:
            ax.plot(hours, [v / 1000.0 for v in _binned(rows, f)], label=label, color=color,
                    lw=0.9)
        for a, b in _spans(rows, island=False):
            ax.axvspan(a / 3600.0, b / 3600.0, color="red", alpha=0.15)
        for a, b in _spans(rows, island=True):
            ax.axvspan(a / 3600.0, b / 3600.0, color="orange", alpha=0.2)
        ax.axhline(0, color="black", lw=0.5)
        ax.set_ylabel("power (kW)")
        ax.set_title(f"{scen.name}: {name}", loc="left", fontsize=10)
        ax.grid(alpha=0.3)
        ax2 = ax.twinx()
        ax2.plot(hours, _binned(rows, lambda r: r[mx.SOC]), color="#9467bd", lw=1.2, ls="--",
                 label="car SoC")
        if scen.has_prices:
            ax2.step(hours, [100 * mx.price_at(scen, h * 3600)[0] for h in hours],
                     color="#17becf", lw=1.0, where="mid", label="import price (ct/kWh)")
        ax2.set_ylabel("car SoC (%)" + (" / ct per kWh" if scen.has_prices else ""))
        ax2.set_ylim(0, 100)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8, ncol=6)
    axes[-1, 0].set_xlabel("time of day (h)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
