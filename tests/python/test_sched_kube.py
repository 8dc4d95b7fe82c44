"""test_sched_kube.py - the Kubernetes API client as `gpupool sched` uses
it: in-cluster credentials over TLS (and token rotation), kubeconfig
files (YAML and JSON, CA file and data, insecure), the errors a user gets
for a wrong token, a wrong CA, an unsupported credential plugin or no
cluster at all, and the command line itself.
"""
import base64
import json
import os
import subprocess

import pytest

from test_sched_fakeapi import (FIXTURES, GPUPOOL, TOKEN, FakeAPI, Sched, cluster,  # noqa: F401
                                run_sched, stopped_cleanly, tmp, write_kubeconfig)

TLS = os.path.join(FIXTURES, "tls")
CERT = (os.path.join(TLS, "server.crt"), os.path.join(TLS, "server.key"))


@pytest.fixture
def tls_api(request):
    nodes, pods = cluster()
    server = FakeAPI(nodes, pods, tls=CERT).start()
    request.addfinalizer(server.stop)
    return server


@pytest.fixture
def plain_api(request):
    nodes, pods = cluster()
    server = FakeAPI(nodes, pods).start()
    request.addfinalizer(server.stop)
    return server


def started(request, args, env=None, tmp=None):
    s = Sched(args, env=env, tmp=tmp)
    request.addfinalizer(lambda: stopped_cleanly(s))
    return s


def works(api, s):
    """The daemon reads the cluster and can write to it."""
    code, health = s.get("/healthz")
    assert code == 200 and health["nodes"] == len(api.nodes)
    code, res = s.post("bind", {"PodName": "pending-small", "PodNamespace": "default",
                                "PodUID": "uid-pending-small", "Node": "node-a"})
    assert res == {"Error": ""}
    assert api.bindings == {("default", "pending-small"): "node-a"}


def service_account(tmp, token=TOKEN, ca=CERT[0]):
    d = os.path.join(tmp, "serviceaccount")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "token"), "w") as f:
        f.write(token + "\n")
    with open(ca) as src, open(os.path.join(d, "ca.crt"), "w") as dst:
        dst.write(src.read())
    return d


def in_cluster_env(api):
    return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port)}


def test_in_cluster_over_tls(request, tls_api, tmp):
    sa = service_account(tmp)
    s = started(request, ["--sa-dir", sa], env=in_cluster_env(tls_api), tmp=tmp)
    works(tls_api, s)


def test_rotated_token_is_picked_up(request, tls_api, tmp):
    sa = service_account(tmp)
    s = started(request, ["--sa-dir", sa], env=in_cluster_env(tls_api), tmp=tmp)
    # kubelet rotates the token file; the API server stops taking the old one.
    tls_api.token = "rotated-" + TOKEN
    with open(os.path.join(sa, "token.new"), "w") as f:
        f.write(tls_api.token + "\n")
    os.replace(os.path.join(sa, "token.new"), os.path.join(sa, "token"))
    works(tls_api, s)


def test_in_cluster_with_the_wrong_ca_fails_to_start(tls_api, tmp):
    sa = service_account(tmp, ca=os.path.join(TLS, "other.crt"))
    r = run_sched(["--sa-dir", sa], env=in_cluster_env(tls_api))
    assert r.returncode == 1
    assert "cannot read the cluster" in r.stderr and "certificate" in r.stderr.lower(), r.stderr


def test_not_in_a_cluster(tmp):
    env = {"KUBERNETES_SERVICE_HOST": "", "KUBERNETES_SERVICE_PORT": ""}
    r = run_sched(["--sa-dir", tmp], env=env)
    assert r.returncode == 1 and "not in a cluster" in r.stderr and "--kubeconfig" in r.stderr


def test_kubeconfig_with_ca_data(request, tls_api, tmp):
    with open(CERT[0], "rb") as f:
        data = base64.b64encode(f.read()).decode()
    kc = write_kubeconfig(os.path.join(tmp, "kc"), tls_api.url,
                          extra_cluster="    certificate-authority-data: %s\n" % data)
    works(tls_api, started(request, ["--kubeconfig", kc], tmp=tmp))


def test_kubeconfig_with_a_relative_ca_file(request, tls_api, tmp):
    with open(CERT[0]) as src, open(os.path.join(tmp, "cluster-ca.pem"), "w") as dst:
        dst.write(src.read())
    kc = write_kubeconfig(os.path.join(tmp, "kc"), tls_api.url,
                          extra_cluster="    certificate-authority: cluster-ca.pem\n")
    works(tls_api, started(request, ["--kubeconfig", kc], tmp=tmp))


CLIENT = (os.path.join(TLS, "client.crt"), os.path.join(TLS, "client.key"))


@pytest.fixture
def cert_api(request):
    """TLS with client-certificate authentication: CLIENT is the one allowed."""
    nodes, pods = cluster()
    server = FakeAPI(nodes, pods, tls=CERT, client_ca=CLIENT[0]).start()
    request.addfinalizer(server.stop)
    return server


def b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def test_kubeconfig_with_client_certificate_data(request, cert_api, tmp):
    # As kubeadm's admin.conf and kind's kubeconfig have it.
    kc = write_kubeconfig(os.path.join(tmp, "kc"), cert_api.url, token=None,
                          extra_cluster="    certificate-authority-data: %s\n" % b64(CERT[0]),
                          extra_user="    client-certificate-data: %s\n"
                                     "    client-key-data: %s\n" % (b64(CLIENT[0]),
                                                                   b64(CLIENT[1])))
    works(cert_api, started(request, ["--kubeconfig", kc], tmp=tmp))


def test_kubeconfig_with_client_certificate_files(request, cert_api, tmp):
    for src, name in ((CLIENT[0], "me.crt"), (CLIENT[1], "me.key"), (CERT[0], "ca.pem")):
        with open(src) as f, open(os.path.join(tmp, name), "w") as g:
            g.write(f.read())
    kc = write_kubeconfig(os.path.join(tmp, "kc"), cert_api.url, token=None,
                          extra_cluster="    certificate-authority: ca.pem\n",
                          extra_user="    client-certificate: me.crt\n"
                                     "    client-key: me.key\n")
    works(cert_api, started(request, ["--kubeconfig", kc], tmp=tmp))


def test_client_certificate_without_its_key_is_refused(tmp):
    kc = write_kubeconfig(os.path.join(tmp, "kc"), "https://127.0.0.1:1", token=None,
                          extra_user="    client-certificate-data: %s\n" % b64(CLIENT[0]))
    r = run_sched(["--kubeconfig", kc])
    assert r.returncode == 1
    assert "needs its client key" in r.stderr


def test_without_the_client_certificate_the_server_refuses(cert_api, tmp):
    kc = write_kubeconfig(os.path.join(tmp, "kc"), cert_api.url,
                          extra_cluster="    certificate-authority-data: %s\n" % b64(CERT[0]))
    r = run_sched(["--kubeconfig", kc])
    assert r.returncode == 1


def test_kubeconfig_insecure(request, tls_api, tmp):
    kc = write_kubeconfig(os.path.join(tmp, "kc"), tls_api.url,
                          extra_cluster="    insecure-skip-tls-verify: true\n")
    works(tls_api, started(request, ["--kubeconfig", kc], tmp=tmp))


def test_kubeconfig_in_json(request, plain_api, tmp):
    kc = os.path.join(tmp, "kc.json")
    with open(kc, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "x",
                   "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                   "clusters": [{"name": "c", "cluster": {"server": plain_api.url}}],
                   "users": [{"name": "u", "user": {"token": TOKEN}}]}, f)
    works(plain_api, started(request, ["--kubeconfig", kc], tmp=tmp))


def test_kubeconfig_context_flag(request, plain_api, tmp):
    kc = write_kubeconfig(os.path.join(tmp, "kc"), "http://127.0.0.1:1")  # current: unreachable
    with open(kc) as f:
        text = f.read()
    text = text.replace("contexts:\n", "contexts:\n- context:\n    cluster: good\n"
                        "    user: tester\n  name: good\n", 1)
    text = text.replace("clusters:\n", "clusters:\n- cluster:\n    server: %s\n  name: good\n"
                        % plain_api.url, 1)
    with open(kc, "w") as f:
        f.write(text)
    works(plain_api, started(request, ["--kubeconfig", kc, "--context", "good"], tmp=tmp))


def test_a_wrong_token_is_reported(plain_api, tmp):
    kc = write_kubeconfig(os.path.join(tmp, "kc"), plain_api.url, token="not-the-token")
    r = run_sched(["--kubeconfig", kc])
    assert r.returncode == 1 and "401" in r.stderr and "Unauthorized" in r.stderr, r.stderr


def test_credential_plugins_are_refused_clearly(tmp):
    kc = os.path.join(tmp, "kc")
    with open(kc, "w") as f:
        f.write("apiVersion: v1\nkind: Config\ncurrent-context: eks\n"
                "clusters:\n- name: eks\n  cluster:\n    server: https://example.invalid\n"
                "contexts:\n- name: eks\n  context:\n    cluster: eks\n    user: aws\n"
                "users:\n- name: aws\n  user:\n    exec:\n      apiVersion: "
                "client.authentication.k8s.io/v1beta1\n      command: aws\n      args:\n"
                "      - eks\n      - get-token\n")
    r = run_sched(["--kubeconfig", kc])
    assert r.returncode == 1
    assert "user 'aws': 'exec' credential plugins are not supported" in r.stderr, r.stderr


def test_yaml_outside_the_subset_is_refused_with_a_line(tmp):
    kc = os.path.join(tmp, "kc")
    with open(kc, "w") as f:
        f.write("apiVersion: v1\nclusters: &c\n- name: x\n")
    r = run_sched(["--kubeconfig", kc])
    assert r.returncode == 1 and "line 2: anchors and aliases are not supported" in r.stderr


def test_help_documents_every_flag():
    r = subprocess.run([GPUPOOL, "sched", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for flag in ("--listen", "--ready-file", "--kubeconfig", "--context", "--sa-dir",
                 "--policy", "--bind-lock-ttl", "--bind-lock-wait", "--resync",
                 "--node-state-max-age", "--api-timeout", "--conflict-retries", "--max-body",
                 "--max-list", "--max-nodes", "--verbose"):
        assert flag in r.stdout, flag


@pytest.mark.parametrize("args,named", [
    (["--bind-lock-ttl", "soon"], "--bind-lock-ttl"),
    (["--max-body", "lots"], "--max-body"),
    (["--max-nodes", "0"], "--max-nodes"),
    (["--policy", "node=fastest"], "--policy"),
    (["--frobnicate"], "--frobnicate"),
    (["extra"], "extra"),
])
def test_usage_errors_name_the_argument(args, named):
    r = subprocess.run([GPUPOOL, "sched"] + args, capture_output=True, text=True)
    assert r.returncode == 2 and named in r.stderr, r.stderr
