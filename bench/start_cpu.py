#!/usr/bin/env python3
# Issue 22: the CPU (user + sys, every thread, from wait4) and wall time an mvgen `serve` spends from exec to
# its first 200 on the flavor list, each start on a fresh output dir (so the SQLite database is created),
# SIGKILLed at once after the 200; alternating the builds given. CPU is what the shared machine distorts least.
# Usage: bench/start_cpu.py RUNS BINARY... (a path ending in bare_axum is started as examples/bare_axum ADDR).
import os, sys, time, socket, tempfile, signal, statistics, subprocess, shutil
bins = sys.argv[2:]; runs = int(sys.argv[1])
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def one(binary):
    d = tempfile.mkdtemp(); port = free_port()
    env = {"PATH": os.environ["PATH"], "MV_PROVIDER": "mock", "MV_OUTPUT_DIR": d, "MVGEN_ADDR": f"127.0.0.1:{port}", "RUST_LOG": "off"}
    t0 = time.perf_counter()
    args = [binary, f"127.0.0.1:{port}"] if binary.endswith("bare_axum") else [binary, "serve"]
    p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    req = b"GET /api/mv/get_config_flavors HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port)); s.sendall(req); r = s.recv(64); s.close()
            if b" 200 " in r: break
        except OSError: time.sleep(0.0005)
    wall = (time.perf_counter() - t0) * 1000
    os.kill(p.pid, signal.SIGKILL)
    _, _, ru = os.wait4(p.pid, 0); p.returncode = -9
    shutil.rmtree(d, ignore_errors=True)
    return wall, (ru.ru_utime + ru.ru_stime) * 1000, ru.ru_minflt
res = {b: [] for b in bins}
for i in range(runs):
    for b in (bins if i % 2 == 0 else bins[::-1]):
        res[b].append(one(b))
for b in bins:
    w = [x[0] for x in res[b]]; c = [x[1] for x in res[b]]; f = [x[2] for x in res[b]]
    print(f"{b}: wall median {statistics.median(w):.1f} ms, CPU median {statistics.median(c):.1f} ms (min {min(c):.1f}), minor faults median {statistics.median(f):.0f}")
