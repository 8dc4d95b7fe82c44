"""test_agent_prometheus.py - the Grafana dashboard against a real
Prometheus: Debian's prometheus, started on loopback, scrapes a running
agent on the simulator (tenants that allocate, get refused, compute and
sit idle); every PromQL expression of deploy/grafana/*.json must return
data.  The server is stopped and its data removed whatever happens."""
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from agent_kit import Agent, machine, until
from scaler_kit import ROOT

assert machine  # a fixture

DASHBOARDS = sorted(glob.glob(os.path.join(ROOT, "deploy", "grafana", "*.json")))
# Values a user would pick for the dashboard's variables.
VARIABLES = {"$node": ".*", "$idle": "1"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exprs(path):
    """Every PromQL expression in a dashboard, panels in rows included."""
    with open(path) as f:
        dash = json.load(f)
    out = []

    def walk(panels):
        for p in panels:
            out.extend((p["title"], t["expr"]) for t in p.get("targets", []))
            walk(p.get("panels", []))
    walk(dash["panels"])
    return out


@pytest.fixture
def prometheus(request, machine):
    if not shutil.which("prometheus"):
        pytest.skip("prometheus is not installed (scripts/install-deps)")
    agent = Agent(machine, ["--interval", "200ms"])
    request.addfinalizer(agent.stop)
    port = free_port()
    conf = os.path.join(machine.dir, "prometheus.yml")
    with open(conf, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: gpupool-agent\n    static_configs:\n"
                "      - targets: ['%s']\n" % agent.url.split("//")[1])
    log = open(os.path.join(machine.dir, "prometheus.log"), "w")
    proc = subprocess.Popen(["prometheus", "--config.file=" + conf,
                             "--storage.tsdb.path=" + os.path.join(machine.dir, "tsdb"),
                             "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT)

    def stop():
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    request.addfinalizer(stop)
    url = "http://127.0.0.1:%d" % port
    until("prometheus to be ready", lambda: urllib.request.urlopen(url + "/-/ready", timeout=2)
          .status == 200, limit=30)
    return agent, url


def query(url, expr):
    q = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen("%s/api/v1/query?%s" % (url, q), timeout=10) as r:
        doc = json.load(r)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def test_every_dashboard_query_returns_data(prometheus, machine):
    agent, url = prometheus
    assert DASHBOARDS, "no dashboard in deploy/grafana"
    a = machine.tenant("uid-a", "train", memory="1GiB")
    b = machine.tenant("uid-b", "serve", memory="4GiB", device=1)
    a.do("alloc 256MiB")
    assert a.do("alloc 2GiB")["alloc"] != "0"  # refused: over the budget
    b.do("alloc 1GiB")
    b.do("spin 2000 200")                      # keeps card 1 busy
    # Enough samples for rate() and increase(), and tenant a idle > 1 s.
    until("prometheus to hold several scrapes of the tenants",
          lambda: query(url, 'count_over_time(gpupool_tenant_processes{pod_uid="uid-a"}[1m]) '
                             '>= 4'), limit=60, every=0.5)
    time.sleep(1.5)
    for path in DASHBOARDS:
        for title, expr in exprs(path):
            e = expr
            for k, v in VARIABLES.items():
                e = e.replace(k, v)
            assert "$" not in e, "unknown variable in %r" % expr
            result = query(url, e)
            assert result, "%s: panel %r: no data for %s" % (os.path.basename(path), title, e)
