"""Time on the MicroPython unix port against real peers: the firmware's SNTP client
against Debian's chronyd on a loopback port (system clock untouched), and its POSIX TZ
rules against CPython's zoneinfo for every transition 2026-2029."""

from gwhost import benchfield


def test_sntp_against_chrony_is_accurate_and_never_stalls_the_loop():
    r = benchfield.sntp_check(syncs=10)
    assert r["sntp_syncs"] == 10
    assert r["sntp_error_ms_max"] <= 50  # vs the host clock chronyd serves
    assert r["sntp_offset_ms_max"] <= 50
    # the blocking pattern of micropython-lib's ntptime stalls for its whole 1 s timeout
    assert r["ntptime_block_ms"] >= 900


def test_dst_rules_match_zoneinfo_2026_to_2029():
    r = benchfield.dst_check()
    assert r["dst_transitions_checked"] >= 32
    assert r["dst_errors"] == 0, r["dst_problems"]


def test_dst_check_catches_a_wrong_rule(monkeypatch):
    # UK rule with the switch hour wrong (02:00 instead of 01:00): every transition differs
    monkeypatch.setattr(benchfield, "ZONES", (("GMT0BST,M3.5.0/2,M10.5.0/3", "Europe/London"),))
    r = benchfield.dst_check()
    assert r["dst_errors"] >= 8


def test_sntp_service_resyncs_after_a_reconnect_and_waits_while_down():
    """The firmware's Sntp.run (here on CPython) against chronyd: one sync at start, none
    while the network is down, one more at once after the reconnect (gen bumped)."""
    import asyncio

    from gateway.clock import Clock
    from gateway.sntp import Sntp
    from gwhost.ntpserver import Chrony

    class Net:
        up = True
        gen = 1

        def __init__(self, port):
            self.port = port

        def resolve(self, host, port):
            return ("127.0.0.1", self.port)

    async def scenario(port):
        net = Net(port)
        s = Sntp({"server": "127.0.0.1", "port": port, "sync_s": 3600, "retry_s": 1,
                  "timeout_ms": 1000, "tz": "UTC0"}, Clock(), net)
        task = asyncio.create_task(s.run())
        await asyncio.sleep(0.8)
        first = s.syncs
        net.up = False
        await asyncio.sleep(0.6)
        while_down = s.syncs
        net.up = True
        net.gen = 2  # reconnected
        await asyncio.sleep(0.8)
        task.cancel()
        return first, while_down, s.syncs, s.now_s()

    with Chrony() as srv:
        first, down, after, now = asyncio.run(scenario(srv.port))
    assert (first, down, after) == (1, 1, 2)
    assert now > 24 * 365 * 86400  # a real date (seconds since 2000)
