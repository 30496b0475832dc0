# Closing a metering window of gateway.metering.adc.AdcMeter: rms, power, frequency, flags.
# Split from adc.py to keep each file small; integers only, no allocation.
from micropython import const

from gateway import metering as _f
from gateway.metering import fixed as fx

_C = const(32767)  # clamp of a Q4 mean before squaring (|x| * |x| < 2**30)


def _clamp(x):
    return -_C if x < -_C else (_C if x > _C else x)


def _track(m, ch, mean_q4):
    """Move the tracked offset of channel ch by the window's residual, within its bias
    window (an open CT must not drag it away)."""
    b = m._bias_q4[ch]
    t = m._tol_q4
    o = m.off_q4[ch] + mean_q4
    o = b - t if o < b - t else (b + t if o > b + t else o)
    m.off_q4[ch] = o
    m._off[ch] = (o + 8) >> 4


def _period(m, halves):
    """Mains period (ns) over whole periods between same-direction crossings, else (when
    `halves`: both polarities measured) from the mean half-cycle; 0 when unknown."""
    t = 0
    if m._c0 >= 0 and m._c1 > m._c0:
        d = m._c1 - m._c0
        per = (d + m.h_ns) // (2 * m.h_ns)
        if per > 0:
            t = (d + (per >> 1)) // per
    if t == 0 and halves and m._hn:
        t = (m._hs // m._hn) << 1
    return t


def finish(m, meter, now_ms):
    cfg = m.cfg
    flags = 0
    halves = m.nh[0] + m.nh[1]
    if not m._novolt and not m._flat and (m.nh[0] == 0 or m.nh[1] == 0):
        m.n_dropped += 1  # starved, not a grid event: see AdcMeter.finish
        t = _period(m, False)  # the planner still learns the half-period it re-locks from
        if t and 40000 <= fx.mhz_from_period_ns(t) <= 70000:
            m.h_ns = t >> 1
        return False
    if m._novolt:
        flags |= _f.FLAG_NO_VOLTAGE
    if halves == 0:
        flags |= _f.FLAG_NO_ZC
    elif m.nh[0] == 0 or m.nh[1] == 0:
        flags |= _f.FLAG_UNBALANCED
    if m._clip & 1:
        flags |= _f.FLAG_CLIPPED
    # Residual DC means are only meaningful over both polarities: with one, the mean of a
    # half-cycle is not its DC, so the tracked offsets alone are used (bal = 0).
    bal = m.nh[0] > 0 and m.nh[1] > 0
    vq4 = 0
    mx = 0
    if halves:
        if bal:
            mx_raw = m._mean(0, 0)
            mx = _clamp(mx_raw)
            _track(m, 0, mx_raw)
        vq4 = fx.rms_q4(m._mean(0, 1) - ((mx * mx) >> 8))
    gm, ge = m._gv
    v_mv = fx.fmul(vq4, gm, ge)
    if v_mv < cfg["v_min_mv"]:
        flags |= _f.FLAG_NO_VOLTAGE
    m.v_mv = v_mv
    grid = 0
    house = 0
    ph_w = meter.ph_w
    ph_ma = meter.ph_ma
    for i in range(len(ph_w)):
        ph_w[i] = 0
        ph_ma[i] = 0
    for c in range(m.nc):
        ch = c + 1
        cf = 0
        p = 0
        ma = 0
        va = 0
        pf = 0
        if halves:
            my_raw = m._mean(ch, 0) if bal else 0
            my = _clamp(my_raw)
            iq4 = fx.rms_q4(m._mean(ch, 1) - ((my * my) >> 8))
            cov = m._mean(ch, 2) - ((mx * my) >> 8)
            gm, ge = m._gi[c]
            ma = fx.fmul(iq4, gm, ge)
            gm, ge = m._gp[c]
            p = fx.fmul(cov, gm, ge) * m._sign[c]
            gm, ge = m._gs[c]
            va = fx.fmul3(vq4, iq4, gm, ge)
            if va > 0:
                pf = p * 1000 // va
            dc = m.off_q4[ch] + my_raw - m._bias_q4[ch]
            if dc > m._tol_q4 or dc < -m._tol_q4:
                cf |= _f.FLAG_CT_OPEN
            elif bal:
                _track(m, ch, my_raw)
        if m._clip & (1 << ch):
            cf |= _f.FLAG_CLIPPED
        m.ch_w[c] = p
        m.ch_ma[c] = ma
        m.ch_va[c] = va
        m.ch_pf_pm[c] = pf
        m.ch_flags[c] = cf
        role = m._role[c]
        if role == "grid":
            grid += p
            ph_w[m._phase[c]] += p
            ph_ma[m._phase[c]] += ma
            flags |= cf
        elif role == "house":
            house += p
            if cf:
                flags |= _f.FLAG_HOUSE_FAULT
    t = _period(m, True)
    f = fx.mhz_from_period_ns(t) if t else 0
    if f and (f < 40000 or f > 70000):
        flags |= _f.FLAG_FREQ_RANGE
    elif f and not flags & _f.FLAG_NO_VOLTAGE:
        m.h_ns = t >> 1  # not from a window that lost the voltage (cut-off halves)
    if flags & _f.FLAG_NO_VOLTAGE:
        f = 0
    m.f_millihz = f
    _f.publish(meter, now_ms, flags, grid, house, v_mv, f, m.rocof.update(f, now_ms))
    return True
