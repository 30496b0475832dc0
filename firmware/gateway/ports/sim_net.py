# The simulated board's network: the host's loopback, always up. Same state interface as
# gateway.netmgr.NetManager (up, gen, resolve, want, state_record, status_lines).


class Always:
    up = True
    gen = 1

    def resolve(self, host, port):
        import socket

        try:
            return socket.getaddrinfo(host, port)[0][-1]
        except (OSError, IndexError):
            return None

    def want(self, host, port):
        pass

    def state_record(self):
        return {"state": "up", "mode": "loopback", "ip": "127.0.0.1", "rssi": None,
                "attempts": 0, "losses": 0, "error": None}

    def status_lines(self):
        return ["network: loopback (simulated board), always up"]


def open_link(board, cfg):
    return Always()
