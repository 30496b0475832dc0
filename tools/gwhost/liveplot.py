"""Plot and report of a live run (make sim): power flows, SoC and safety state.

The trace is a list of dicts at about 1 s with keys t_s, pv_w, load_w, ev_w,
grid_w, ev_soc_pct, grid_up, switch_island, interlock, safety.
"""

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

SAFETY_ORDER = ["NORMAL", "RECONNECT_WAIT", "ISLAND_BACKUP", "GRID_LOST_BLOCKED", "FAULT",
                "BOOT", "BLOCKED"]


def _state_name(s):
    return (s or "BOOT").split("(")[0].split("_(")[0].strip() or "BOOT"


def plot(trace, path, title):
    t = [r["t_s"] for r in trace]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(12, 8.5), sharex=True,
                                        gridspec_kw={"height_ratios": [3, 1.2, 1.3]})
    ax1.plot(t, [r["pv_w"] for r in trace], color="#e8a200", label="PV")
    ax1.plot(t, [r["load_w"] for r in trace], color="#7a7a7a", label="house load")
    ax1.plot(t, [r["ev_w"] for r in trace], color="#1f77b4",
             label="car (+ charging, - discharging)")
    ax1.plot(t, [r["grid_w"] for r in trace], color="#d62728", lw=1.2,
             label="grid (+ import, - export)")
    ax1.axhline(0, color="black", lw=0.6)
    _shade_outages(ax1, trace)
    ax1.set_ylabel("power [W]")
    ax1.legend(loc="upper right", fontsize=8, ncol=2)
    ax1.grid(alpha=0.3)
    ax1.set_title(title)

    ax2.plot(t, [r["ev_soc_pct"] for r in trace], color="#2ca02c", label="car SoC")
    ax2.set_ylabel("SoC [%]")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="upper right", fontsize=8)

    names = [_state_name(r.get("safety")) for r in trace]
    levels = [n for n in SAFETY_ORDER if n in names] + sorted(
        {n for n in names if n not in SAFETY_ORDER})
    ax3.step(t, [levels.index(n) for n in names], where="post", color="#9467bd",
             label="safety state")
    ax3.step(t, [-1 + (1 if r.get("interlock") else 0) * 0.8 for r in trace], where="post",
             color="#8c564b", label="interlock (up = export permitted)")
    ax3.set_yticks(list(range(len(levels))) + [-1])
    ax3.set_yticklabels(levels + ["interlock"], fontsize=7)
    _shade_outages(ax3, trace)
    ax3.set_xlabel("scenario time [s]")
    ax3.legend(loc="upper right", fontsize=7)
    ax3.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _shade_outages(ax, trace):
    start = None
    for r in trace + [{"t_s": trace[-1]["t_s"], "grid_up": True}]:
        if not r["grid_up"] and start is None:
            start = (r["t_s"], r.get("switch_island", False))
        elif r["grid_up"] and start is not None:
            color = "#9ecae1" if start[1] else "#fcbba1"
            ax.axvspan(start[0], r["t_s"], color=color, alpha=0.4, lw=0)
            start = None


def report(metrics, trace, path, scenario_name):
    intro = ("The unmodified firmware on the MicroPython unix port, the plant serving the "
             "charger and the inverter over Modbus RTU on pseudo-terminals, MQTT on loopback.")
    lines = ["# Live run: %s" % scenario_name, "", intro, "", "| metric | value |",
             "| --- | --- |"]
    lines += ["| %s | %s |" % (k, v) for k, v in metrics.items() if not isinstance(v, (list, dict))]
    outages = list(metrics.get("events", []))
    if outages:
        head = "| t [s] | type | switch | block latency [ms] | Modbus stop latency [ms] |"
        lines += ["", "## Grid events", "", head, "| --- | --- | --- | --- | --- |"]
        for e in outages:
            lines.append("| %s | %s | %s | %s | %s |" % (
                e.get("t_s"), e.get("type"), e.get("switch", "-"),
                e.get("block_latency_ms"), e.get("modbus_stop_latency_ms")))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
