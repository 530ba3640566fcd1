#!/usr/bin/env python3
"""The connection layer of two mvgen binaries side by side, in one run (BENCHMARKS.md, "connections").

    bench/connections.py OLD_BINARY NEW_BINARY        # e.g. built from main and from this branch
    bench/connections.sh                              # builds both first, then runs this

For each binary, started on 127.0.0.1 with mock providers and its soft RLIMIT_NOFILE set to 1024:
  - GET /api/mv/get_config_flavors with wrk (-t2 -c32, DURATION s, ROUNDS rounds alternating the
    binaries; median req/s and server CPU per request from /proc/PID/stat), and new/old ratios;
  - time until the server closes a silent connection and a half-sent request head (LIMIT s at most);
  - a flood of FLOOD connections each holding a partial request head: connections the server holds,
    /health latency during the flood, RSS idle / during / 3 s after the clients left;
  - the same flood against the new binary with MVGEN_MAX_CONNECTIONS=CAP (held at the cap);
  - time from SIGTERM to exit with one stalled client connected (killed after LIMIT s).
Knobs (environment): DURATION (10), ROUNDS (5), FLOOD (1100), CAP (256), LIMIT (30).
"""

import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

DURATION = int(os.environ.get("DURATION", "10"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
FLOOD = int(os.environ.get("FLOOD", "1100"))
CAP = int(os.environ.get("CAP", "256"))
LIMIT = float(os.environ.get("LIMIT", "30"))
PARTIAL_HEAD = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: "


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, env=None):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="mvgen-bench-", suffix=".log")
        self.out = tempfile.TemporaryDirectory(prefix="mvgen-bench-out-")
        environment = {"PATH": os.environ["PATH"], "MV_OUTPUT_DIR": self.out.name, "RUST_LOG": "warn"}
        environment.update(env or {})

        def nofile_1024():
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

        self.proc = subprocess.Popen(
            [binary, "serve", "--addr", f"127.0.0.1:{self.port}"],
            env=environment, stdout=self.log, stderr=self.log, preexec_fn=nofile_1024,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.get("/health", timeout=1)[0] == 200:
                return
            time.sleep(0.05)
        raise SystemExit(f"{binary} did not answer /health within 10 s")

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def get(self, path, timeout=5.0):
        """(status, seconds) for one request on a fresh connection; status 0 on failure."""
        start = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                s.settimeout(max(0.01, timeout - (time.monotonic() - start)))
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
                first = s.recv(64)
                return int(first[9:12] or 0), time.monotonic() - start
        except (OSError, ValueError):
            return 0, time.monotonic() - start

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def sockets(self):
        fd_dir = f"/proc/{self.proc.pid}/fd"
        count = 0
        for fd in os.listdir(fd_dir):
            try:
                count += os.readlink(os.path.join(fd_dir, fd)).startswith("socket:")
            except OSError:
                pass
        return count

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_rps(server):
    """(req/s, server CPU µs per request) for one wrk run."""
    port, before = server.port, cpu_seconds(server.proc.pid)
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{DURATION}s", "--timeout", "5s", f"http://127.0.0.1:{port}/api/mv/get_config_flavors"],
        capture_output=True, text=True, check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    cpu = cpu_seconds(server.proc.pid) - before
    requests = int(next(l for l in out.splitlines() if "requests in" in l).split()[0])
    return float(next(l for l in out.splitlines() if l.startswith("Requests/sec")).split()[1]), cpu / requests * 1e6


def time_to_close(server, payload):
    """Seconds until the server closes a connection that sent `payload` and then nothing."""
    s = server.connect()
    s.sendall(payload)
    start = time.monotonic()
    s.settimeout(LIMIT)
    try:
        while s.recv(4096):
            pass
        return time.monotonic() - start
    except socket.timeout:
        return None
    except OSError:
        return time.monotonic() - start
    finally:
        s.close()


def flood(server):
    """Opens FLOOD connections holding a partial head; returns the figures."""
    baseline, idle = server.sockets(), server.rss_mib()
    clients = []
    for _ in range(FLOOD):
        try:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", server.port))
            clients.append(s)
        except OSError:
            break
    time.sleep(1.0)
    for s in clients:
        try:
            s.send(PARTIAL_HEAD)
        except OSError:
            pass
    time.sleep(2.0)
    held, during = server.sockets() - baseline, server.rss_mib()
    health, health_s = server.get("/health", timeout=15)
    for s in clients:
        s.close()
    time.sleep(3.0)
    after_status, after_s = server.get("/health", timeout=15)
    return {
        "held": held, "idle": idle, "during": during, "after": server.rss_mib(),
        "health": f"{health} in {health_s:.2f} s" if health else f"no answer in {health_s:.1f} s",
        "health_after": f"{after_status} in {after_s:.3f} s" if after_status else "no answer",
    }


def shutdown_time(binary):
    server = Server(binary)
    stalled = server.connect()
    stalled.sendall(b"GET /health HTTP/1.1\r\nHo")
    time.sleep(0.2)
    start = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(timeout=LIMIT)
        took = f"{time.monotonic() - start:.3f} s (exit {server.proc.returncode})"
    except subprocess.TimeoutExpired:
        took = f"still running after {LIMIT:.0f} s"
    server.stop()
    stalled.close()
    return took


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    binaries = {"old": sys.argv[1], "new": sys.argv[2]}
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fmt = lambda s: f"{s:.3f} s" if s is not None else f"open after {LIMIT:.0f} s"

    rps = {name: [] for name in binaries}
    servers = {name: Server(path) for name, path in binaries.items()}
    for server in servers.values():
        subprocess.run(["wrk", "-t2", "-c32", "-d1s", f"http://127.0.0.1:{server.port}/health"], capture_output=True)
    cpu = {name: [] for name in binaries}
    for _ in range(ROUNDS):
        for name, server in servers.items():
            r, c = wrk_rps(server)
            rps[name].append(r)
            cpu[name].append(c)
    print(f"{'measurement':<52} {'old':>22} {'new':>22}")
    med = {name: statistics.median(values) for name, values in rps.items()}
    med_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    print(f"{'GET get_config_flavors req/s (median of %d)' % ROUNDS:<52} {med['old']:>22.0f} {med['new']:>22.0f}")
    print(f"{'  new / old':<52} {'':>22} {med['new'] / med['old']:>22.3f}")
    print(f"{'  rounds':<52} {str([round(v / 1000) for v in rps['old']]):>22} {str([round(v / 1000) for v in rps['new']]):>22}")
    print(f"{'  server CPU us/request (median)':<52} {med_cpu['old']:>22.2f} {med_cpu['new']:>22.2f}")
    print(f"{'  new / old':<52} {'':>22} {med_cpu['new'] / med_cpu['old']:>22.3f}")

    rows = {}
    for name, server in servers.items():
        rows.setdefault("silent connection closed after", {})[name] = fmt(time_to_close(server, b""))
        rows.setdefault("half request line closed after", {})[name] = fmt(time_to_close(server, b"GET /hea"))
    for label, row in rows.items():
        print(f"{label:<52} {row['old']:>22} {row['new']:>22}")

    results = {}
    for name, server in servers.items():
        results[name] = flood(server)
        server.stop()
    capped = Server(binaries["new"], {"MVGEN_MAX_CONNECTIONS": str(CAP), "MVGEN_HEADER_TIMEOUT_SECS": "2"})
    capped_result = flood(capped)
    capped.stop()
    for key, label in [
        ("held", f"flood of {FLOOD}: connections the server holds"),
        ("health", "  /health during the flood"),
        ("idle", "  RSS MiB idle before"),
        ("during", "  RSS MiB during"),
        ("after", "  RSS MiB 3 s after the clients left"),
        ("health_after", "  /health after"),
    ]:
        old, new = results["old"][key], results["new"][key]
        if isinstance(old, float):
            old, new = f"{old:.1f}", f"{new:.1f}"
        print(f"{label:<52} {old:>22} {new:>22}")
    print(f"new with MVGEN_MAX_CONNECTIONS={CAP}, header timeout 2 s:")
    for key in ["held", "health", "idle", "during", "after", "health_after"]:
        value = capped_result[key]
        print(f"{'  ' + key:<52} {'':>22} {value if not isinstance(value, float) else f'{value:.1f}':>22}")

    old_stop, new_stop = shutdown_time(binaries["old"]), shutdown_time(binaries["new"])
    print(f"{'SIGTERM -> exit with one stalled client':<52} {old_stop:>22} {new_stop:>22}")


if __name__ == "__main__":
    main()
