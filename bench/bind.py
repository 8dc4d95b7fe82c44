"""bench/bind.py - `gpupool sched` against a stand-in API server whose
Bindings take a fixed time (100 ms by default), as kube-scheduler drives it.

Two measurements, each on a fresh extender and API server:

  filter-during-binds  five binds at once (each waiting on its Binding)
                       while a client sends /filter over a kept-alive
                       connection: the latency of the filters answered
                       while binds were in flight (rounds x filters);
  burst                N pods arriving at once, scheduled as kube-scheduler
                       does it: one pod at a time through filter and
                       prioritize, the best node taken, its bind sent off
                       asynchronously (kube-scheduler's binding cycle runs
                       in a goroutine) and the next pod started at once; a
                       failed bind goes back to the queue after 1 s (the
                       scheduler's initial backoff).  Reported: the time
                       until every pod is bound, and each pod's time from
                       the burst's start to its binding.

The stand-in is the fake API server of the tests (tests/python), on
loopback.  `--gpupool` may be given twice with labels, to compare two
builds side by side in one run (bench/bind.sh does that with the build
before the extender's binds moved off its event loop, when it is there).
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))

import test_sched_fakeapi as fake  # noqa: E402

GiB = 1 << 30


def node(name, gpus=8):
    state = {"version": 1, "gpus": [
        {"uuid": "GPU-%s-%d" % (name, i), "model": "NVIDIA H100 80GB HBM3",
         "memoryBytes": 80 * GiB, "compute": 100, "slices": 8, "numa": i // 4,
         "healthy": True} for i in range(gpus)]}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": name, "annotations": {"gpupool.io/node-state": json.dumps(state)}}}


def pod(name, mib):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": "uid-" + name},
            "spec": {"containers": [{"name": "main", "image": "app", "resources": {
                "limits": {"gpupool.io/vgpu": "1", "gpupool.io/vgpu-memory": str(mib)}}}]},
            "status": {"phase": "Pending"}}


class Client:
    """One kept-alive connection, as Go's HTTP client keeps them."""

    def __init__(self, url):
        host, port = url.split("//")[1].split(":")
        self.c = http.client.HTTPConnection(host, int(port), timeout=60)

    def post(self, verb, body):
        data = json.dumps(body).encode()
        self.c.request("POST", "/" + verb, data, {"Content-Type": "application/json"})
        r = self.c.getresponse()
        return r.status, json.loads(r.read())


class Env:
    def __init__(self, gpupool, nodes, bind_s):
        self.api = fake.FakeAPI([node("n%02d" % i) for i in range(nodes)]).start()
        self.api.delays[("POST", "binding")] = bind_s
        self.tmp = tempfile.mkdtemp(prefix="gpbench-")
        kc = fake.write_kubeconfig(os.path.join(self.tmp, "kc"), self.api.url)
        fake.GPUPOOL = gpupool
        self.sched = fake.Sched(["--kubeconfig", kc], env={"GPUPOOL_LOG": "warn"},
                                tmp=self.tmp)
        self.nodes = ["n%02d" % i for i in range(nodes)]

    def close(self):
        self.sched.stop()
        if os.environ.get("GP_BENCH_LOG"):
            sys.stderr.write(self.sched.output())
        self.api.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def filter_during_binds(gpupool, rounds, nodes, bind_s):
    env = Env(gpupool, nodes, bind_s)
    lat = []
    try:
        fc = Client(env.sched.url)
        probe = pod("probe", 1024)
        fc.post("filter", {"Pod": probe, "NodeNames": env.nodes})  # warm
        for r in range(rounds):
            names = ["r%d-b%d" % (r, i) for i in range(5)]
            for n in names:
                env.api.put_pod(pod(n, 1024))
            done = threading.Event()
            left = [len(names)]
            lock = threading.Lock()

            def bind(n, i):
                c = Client(env.sched.url)
                c.post("bind", {"PodName": n, "PodNamespace": "default", "PodUID": "uid-" + n,
                                "Node": env.nodes[i % len(env.nodes)]})
                with lock:
                    left[0] -= 1
                    if not left[0]:
                        done.set()

            ts = [threading.Thread(target=bind, args=(n, i)) for i, n in enumerate(names)]
            for t in ts:
                t.start()
            # Filters while the binds wait on the API server.
            while not done.is_set():
                t0 = time.perf_counter()
                fc.post("filter", {"Pod": probe, "NodeNames": env.nodes})
                t1 = time.perf_counter()
                if not done.is_set():
                    lat.append(t1 - t0)
            for t in ts:
                t.join()
        server = server_filter_times(env.sched.url)
    finally:
        env.close()
    lat.sort()
    return {"filters": len(lat), "p50_ms": 1e3 * lat[len(lat) // 2],
            "p99_ms": 1e3 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "p999_ms": 1e3 * lat[min(len(lat) - 1, int(len(lat) * 0.999))],
            "over_5ms": sum(1 for v in lat if v > 0.005),
            "max_ms": 1e3 * lat[-1], "server_filters": server[0],
            "server_over_5ms": server[0] - server[1]}


def server_filter_times(url):
    """(filters answered, those within 5 ms) as the extender measured them
    itself (its /metrics histogram: arrival to answer, without the time the
    client and the kernel add)."""
    import urllib.error
    import urllib.request
    total = within = 0
    try:
        text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    except urllib.error.HTTPError:
        return 0, 0  # a build without /metrics
    for line in text.splitlines():
        if line.startswith('gpupool_sched_request_duration_seconds_bucket{verb="filter"'):
            n = int(float(line.rsplit(" ", 1)[1]))
            if 'le="0.005"' in line:
                within = n
            if 'le="+Inf"' in line:
                total = n
    return total, within


def burst(gpupool, npods, nodes, bind_s, mib):
    env = Env(gpupool, nodes, bind_s)
    try:
        names = ["p%03d" % i for i in range(npods)]
        for n in names:
            env.api.put_pod(pod(n, mib))
        time.sleep(0.3)  # the extender's view has the pods
        sc = Client(env.sched.url)
        q = queue.Queue()
        for n in names:
            q.put((0.0, n))
        bound, retries = {}, [0]
        lock = threading.Lock()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=npods)
        local = threading.local()
        t0 = time.perf_counter()

        def bind(n, target):
            if not hasattr(local, "c"):
                local.c = Client(env.sched.url)
            _, res = local.c.post("bind", {"PodName": n, "PodNamespace": "default",
                                           "PodUID": "uid-" + n, "Node": target})
            with lock:
                if res.get("Error"):
                    retries[0] += 1
                    q.put((time.perf_counter() + 1.0, n))  # backoff, then again
                else:
                    bound[n] = time.perf_counter() - t0

        while True:
            with lock:
                if len(bound) == npods:
                    break
            try:
                not_before, n = q.get(timeout=0.05)
            except queue.Empty:
                continue
            if time.perf_counter() < not_before:
                q.put((not_before, n))
                time.sleep(0.005)
                continue
            p = pod(n, mib)
            _, fr = sc.post("filter", {"Pod": p, "NodeNames": env.nodes})
            ok = fr.get("NodeNames") or []
            if not ok:
                q.put((time.perf_counter() + 1.0, n))
                continue
            _, scores = sc.post("prioritize", {"Pod": p, "NodeNames": ok})
            best = max(scores, key=lambda h: h["Score"])["Host"]
            pool.submit(bind, n, best)
        total = time.perf_counter() - t0
        pool.shutdown()
    finally:
        env.close()
    times = sorted(bound.values())
    return {"pods": npods, "total_s": total, "median_s": statistics.median(times),
            "p95_s": times[int(len(times) * 0.95) - 1], "failed_binds": retries[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpupool", action="append", required=True,
                    help="LABEL=PATH of a gpupool binary (repeatable)")
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--pods", type=int, default=50)
    ap.add_argument("--bind-ms", type=float, default=100)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--mib", type=int, default=20000, help="memory per pod's vGPU")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    out = {"bind_ms": a.bind_ms, "nodes": a.nodes, "gpus_per_node": 8, "runs": []}
    for spec in a.gpupool:
        label, _, path = spec.partition("=")
        f = filter_during_binds(path, a.rounds, a.nodes, a.bind_ms / 1e3)
        b = burst(path, a.pods, a.nodes, a.bind_ms / 1e3, a.mib)
        out["runs"].append({"label": label, "filter_during_binds": f, "burst": b})
    print("gpupool sched, Bindings answered in %g ms, %d nodes x 8 GPUs" % (a.bind_ms, a.nodes))
    print()
    print("%-10s | filter during 5 binds (ms, at the client)      | %d pods at once" % (
        "", a.pods))
    print("%-10s | %7s %7s %7s %7s %8s %5s | %8s %8s %8s %6s" % (
        "build", "p50", "p99", "p99.9", "max", "filters", ">5ms", "all (s)", "med (s)",
        "p95 (s)", "retry"))
    for r in out["runs"]:
        f, b = r["filter_during_binds"], r["burst"]
        print("%-10s | %7.2f %7.2f %7.2f %7.2f %8d %5d | %8.2f %8.2f %8.2f %6d" % (
            r["label"], f["p50_ms"], f["p99_ms"], f["p999_ms"], f["max_ms"], f["filters"],
            f["over_5ms"], b["total_s"], b["median_s"], b["p95_s"], b["failed_binds"]))
    for r in out["runs"]:
        f = r["filter_during_binds"]
        if f["server_filters"]:
            print("%-10s   as the extender timed them: %d of %d filters over 5 ms" % (
                r["label"], f["server_over_5ms"], f["server_filters"]))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1, sort_keys=True)
            fh.write("\n")


if __name__ == "__main__":
    main()
