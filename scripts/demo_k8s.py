"""demo_k8s.py - act 2 of `make demo`: the Kubernetes path on the simulator.

A pod asks for 2 GiB of one vGPU.  It goes through gpupool webhook,
gpupool sched (filter, prioritize, bind) and the agent's device plugin,
called by a stand-in kubelet, with a stand-in API server (the ones the
tests use: tests/python).  The container then runs with exactly what the
device plugin answered, and tries to take more than its slice.
Run by scripts/demo with Debian's /usr/bin/python3.
"""
import os
import subprocess
import sys
import tempfile
import shutil

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))

from agent_kit import GiB, Agent, Machine, series, until  # noqa: E402
from test_deviceplugin import RES, Kubelet  # noqa: E402
from test_k8s_path import Webhook, admit_and_place, run_container, user_pod  # noqa: E402
from test_sched_fakeapi import FakeAPI, Sched, write_kubeconfig  # noqa: E402


def human(b):
    return "%.2f GiB" % (b / GiB)


def main():
    stubs = tempfile.mkdtemp(prefix="gpdemo-")
    subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"), "--python_out=" + stubs,
                    os.path.join(ROOT, "proto", "deviceplugin.proto")], check=True)
    sys.path.insert(0, stubs)
    import deviceplugin_pb2 as pb
    m = Machine(gpus="H100-SXM-80GB:80GiB:132")
    d = tempfile.mkdtemp(prefix="gpdemo-", dir="/tmp")
    parts = []
    try:
        os.mkdir(d + "/kubelet")
        kubelet = Kubelet(pb, d + "/kubelet")
        parts.append(kubelet.stop)
        api = FakeAPI(nodes=[{"metadata": {"name": "node-1"}}]).start()
        parts.append(api.stop)
        kc = write_kubeconfig(d + "/kubeconfig", api.url)
        agent = Agent(m, ["--kubeconfig", kc, "--resync", "1s", "--device-plugin",
                          "--kubelet-dir", d + "/kubelet"])
        parts.append(agent.stop)
        webhook = Webhook(d)
        parts.append(webhook.stop)
        sched = Sched(["--kubeconfig", kc, "--resync", "200ms"], tmp=d)
        parts.append(sched.stop)
        until("the node state", lambda: "gpupool.io/node-state" in
              api.annotations(api.node("node-1")))
        until("the device plugin", lambda: RES in kubelet.resources())

        pod = user_pod("notebook", 2048)
        print("\ngpupool demo, act 2: the same on Kubernetes (simulated API server and "
              "kubelet)\n")
        print("  pod ml/notebook asks for   gpupool.io/vgpu-memory: 2048")
        pod, answer = admit_and_place(api, webhook, sched, kubelet, pod)
        lim = pod["spec"]["containers"][0]["resources"]["limits"]
        print("  the webhook made it        schedulerName: %s, gpupool.io/vgpu: %s"
              % (pod["spec"]["schedulerName"], lim["gpupool.io/vgpu"]))
        envs = dict(answer.envs)
        print("  gpupool sched placed it    node-1, card %s" % envs["NVIDIA_VISIBLE_DEVICES"])
        print("  the container got          GPUPOOL_MEMORY_LIMIT_0=%s (%s), %s,"
              % (envs["GPUPOOL_MEMORY_LIMIT_0"], human(int(envs["GPUPOOL_MEMORY_LIMIT_0"])),
                 "GPUPOOL_REGION=" + envs["GPUPOOL_REGION"]))
        print("                             mounts " + ", ".join(
            m_.container_path for m_ in answer.mounts))
        p, out = run_container(m, answer, "alloc", "1GiB", "alloc", "1GiB")
        results = [l.split("=")[1] for l in out if l.startswith("alloc=")]
        names = {"0": "ok", "2": "refused: CUDA_ERROR_OUT_OF_MEMORY"}
        print("  inside, cuMemAlloc 1 GiB   %s" % names.get(results[0], results[0]))
        print("  and another 1 GiB          %s (the context and the first GiB hold the "
              "rest of 2 GiB)" % names.get(results[1], results[1]))
        text = until("the agent's figures", lambda: series(
            agent.get("/metrics")[1], "gpupool_tenant_memory_used_bytes", pod="notebook") and
            agent.get("/metrics")[1])
        used = series(text, "gpupool_tenant_memory_used_bytes", pod="notebook")[0]
        print("  the agent shows            ml/notebook/main using %s of %s\n"
              % (human(used), human(2 * GiB)))
        p.kill()
        p.wait()
    finally:
        for stop in reversed(parts):
            try:
                stop()
            except Exception:  # a demo's teardown must not hide its output
                pass
        m.close()
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(stubs, ignore_errors=True)


if __name__ == "__main__":
    main()
