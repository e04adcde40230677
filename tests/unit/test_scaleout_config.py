"""`pushsim proxy-config`: instance specs, the generated HAProxy and Prometheus text, and the CLI.

The generated files are also handed to the real checkers (`haproxy -c`, `promtool check config`)
when those are installed; tests/integration/test_scaleout_haproxy.py runs them for real.
"""
from __future__ import annotations

import re
import shutil
import ssl
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from device_sim.tokens import PartitionedTokenCodec, token_partition
from pushsim.cli import main
from pushsim.credentials import ensure_credentials
from pushsim.scaleout.haproxy import ProxySettings, check_partitions, haproxy_config, map_files
from pushsim.scaleout.instances import Instance, InstanceSpecError, from_endpoints, parse_spec
from pushsim.scaleout.prometheus import prometheus_config

THREE = [Instance("127.0.0.1", 30001, 30002, 30003), Instance("127.0.0.1", 30011, 30012, 30013),
         Instance("10.0.0.3", 2198, 4480, 2199)]


# instance specs ------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,want", [
    ("10.0.0.1", Instance("10.0.0.1", 2198, 4480, 2199)),
    ("Push-1.Example.com", Instance("push-1.example.com", 2198, 4480, 2199)),
    ("127.0.0.1:3001/3002/3003", Instance("127.0.0.1", 3001, 3002, 3003)),
    ("[::1]:3001/3002/3003", Instance("::1", 3001, 3002, 3003)),
    ("::1", Instance("::1", 2198, 4480, 2199)),
    (" host ", Instance("host", 2198, 4480, 2199)),
])
def test_instance_specs(spec: str, want: Instance) -> None:
    assert parse_spec(spec) == want


@pytest.mark.parametrize("spec,says", [
    ("", "empty"), ("host:2199", "three"), ("host:1/2", "three"), ("host:1/2/70000", "70000"),
    ("host:a/2/3", "'a'"), ("host:0/2/3", "'0'"), ("bad host", "not a host"), ("-x", "not a host"),
    ("[::1]x", "IPV6"), ("h;rm", "not a host"),
])
def test_bad_instance_specs_say_why(spec: str, says: str) -> None:
    with pytest.raises(InstanceSpecError, match=re.escape(says)):
        parse_spec(spec)


def test_instance_from_endpoints_document() -> None:
    ep = {"apns": {"h2c_url": "http://0.0.0.0:4002"}, "fcm": {"h2c_url": "http://0.0.0.0:4004"},
          "admin": {"url": "http://0.0.0.0:4005"}}
    assert from_endpoints(ep, "@e.json") == Instance("127.0.0.1", 4002, 4004, 4005)
    assert from_endpoints(ep, "http://box:4005", host="box") == Instance("box", 4002, 4004, 4005)
    with pytest.raises(InstanceSpecError, match="fcm.h2c_url"):
        from_endpoints({"apns": ep["apns"], "admin": ep["admin"]}, "@e.json")
    with pytest.raises(InstanceSpecError, match="no host and port"):
        from_endpoints({**ep, "admin": {"url": "http://x"}}, "@e.json")


def test_one_instance_per_partition_and_no_shared_port() -> None:
    check_partitions(THREE, 3)
    with pytest.raises(ValueError, match="needs 3 instances"):
        check_partitions(THREE[:2], 3)
    check_partitions(THREE[:1], 1)             # one unpartitioned instance behind the proxy
    with pytest.raises(ValueError, match="1..4096"):
        check_partitions([], 0)
    with pytest.raises(ValueError, match="instances 0 and 1 both use 127.0.0.1:30003"):
        check_partitions([THREE[0], Instance("127.0.0.1", 1, 2, 30003)], 2)


# generated text ------------------------------------------------------------------------------
def test_maps_send_every_token_to_the_backend_of_its_partition() -> None:
    """The map files agree with the tokens a partitioned fleet issues (install i → partition i % N)."""
    n = 70                                    # past 64: the FCM prefix's first character moves
    maps = map_files(n)
    apns = dict(line.split() for line in maps["apns.map"].splitlines() if not line.startswith("#"))
    fcm = dict(line.split() for line in maps["fcm.map"].splitlines() if not line.startswith("#"))
    assert len(apns) == len(fcm) == n
    codec = PartitionedTokenCodec(7, n)
    for i in [*range(0, 3 * n, 7), 10**9 + 3]:
        k = i % n
        a, f = codec.apns_token(i), codec.fcm_token(i)
        assert token_partition(a) == token_partition(f) == k
        assert apns[a[:4].lower()] == f"apns_p{k}"      # what path,field(4,/),bytes(0,4),lower,map_str does
        assert fcm[f.split(":")[0][:2]] == f"fcm_p{k}"


def test_config_has_a_backend_per_partition_and_a_round_robin_one() -> None:
    text = haproxy_config(THREE, "/etc/pushsim-proxy", ProxySettings(bind="0.0.0.0", apns_port=443))
    for service, port in (("apns", 0), ("fcm", 1)):
        for k, inst in enumerate(THREE):
            addr = inst.address((inst.apns_h2c, inst.fcm_h2c)[port])
            block = text.split(f"\nbackend {service}_p{k}\n", 1)[1].split("\n\n", 1)[0].splitlines()
            assert [line.split()[0] for line in block] == ["http-error", "server"]
            assert block[1].strip() == f"server p{k} {addr} proto h2 check port {inst.admin} inter 2s fall 2 rise 1"
            assert ("ServiceUnavailable" if service == "apns" else '"status":"UNAVAILABLE"') in block[0]
        any_block = text.split(f"\nbackend {service}_any\n", 1)[1].split("\n\n", 1)[0]
        assert "balance roundrobin" in any_block and any_block.count(" proto h2 ") == 3
    assert "bind 0.0.0.0:443 ssl crt /etc/pushsim-proxy/tls.pem alpn h2 proto h2" in text
    assert "bind 0.0.0.0:4433 ssl crt /etc/pushsim-proxy/tls.pem alpn h2,http/1.1" in text
    assert "map_str(/etc/pushsim-proxy/apns.map,apns_any)" in text
    assert text.count("json_query('$.message.token')") == text.count("json_query('$.message.fid')") == 2
    assert "http-reuse never" in text
    assert "http-reuse safe" in haproxy_config(THREE, "/p", ProxySettings(http_reuse="safe"))
    with pytest.raises(ValueError, match="http_reuse"):
        haproxy_config(THREE, "/p", ProxySettings(http_reuse="sometimes"))


def test_descriptors_cover_every_connection_a_sender_connection_can_hold() -> None:
    """http-reuse never: a sender connection may hold one private connection per instance."""
    text = haproxy_config(THREE, "/p")
    assert "    maxconn 4000\n" in text                              # 16000 // (1 + 3)
    assert f"    ulimit-n {4000 * 4 + 4 * 3 + 100}\n" in text
    shared = haproxy_config(THREE, "/p", ProxySettings(http_reuse="safe", maxconn=100))
    assert "    maxconn 100\n" in shared and f"    ulimit-n {100 * 2 + 12 + 100}\n" in shared
    big = [Instance("10.0.0.1", 1000 + k, 2000 + k, 3000 + k) for k in range(400)]
    assert "    maxconn 100\n" in haproxy_config(big, "/p")            # never below 100


@pytest.mark.parametrize("files_dir", ["relative/dir", "/with space", "/a#b", "/a,b"])
def test_files_dir_must_be_a_plain_absolute_path(files_dir: str) -> None:
    with pytest.raises(ValueError, match="files_dir"):
        haproxy_config(THREE, files_dir)


def test_prometheus_config_labels_each_instance_with_its_partition() -> None:
    text = prometheus_config(THREE, "127.0.0.1:8404")
    assert '- targets: ["127.0.0.1:30013"]\n        labels: {partition: "1", partitions: "3"}' in text
    assert '- targets: ["10.0.0.3:2199"]' in text
    assert "job_name: haproxy" in text and '["127.0.0.1:8404"]' in text
    assert "job_name: haproxy" not in prometheus_config(THREE, None)


def test_ipv6_instances_are_bracketed() -> None:
    six = [Instance("::1", 1001, 1002, 1003), Instance("::1", 2001, 2002, 2003)]
    text = haproxy_config(six, "/p", ProxySettings(bind="::"))
    assert "server p1 [::1]:2001 proto h2" in text and "bind [::]:2197" in text
    assert '["[::1]:2003"]' in prometheus_config(six, None)


# real checkers -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("state")
    ensure_credentials(d)
    return d


def _generate(state: Path, out: Path, *extra: str) -> int:
    return main(["proxy-config", "--partitions", "3", "--state-dir", str(state), "--out", str(out),
                 "--instances", "127.0.0.1:30001/30002/30003,127.0.0.1:30011/30012/30013,10.0.0.3", *extra])


def test_cli_writes_every_file(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "proxy"
    assert _generate(state, out) == 0
    names = {"haproxy.cfg", "apns.map", "fcm.map", "tls.pem", "prometheus.yml"}
    assert {p.name for p in out.iterdir()} == names
    printed = capsys.readouterr()
    assert set(Path(line).name for line in printed.out.split()) == names
    assert f"haproxy -f {out / 'haproxy.cfg'}" in printed.err
    assert stat.S_IMODE((out / "tls.pem").stat().st_mode) == 0o600
    assert (out / "tls.pem").read_bytes() == (state / "server.pem").read_bytes() + (state / "server.key").read_bytes()
    assert f"crt {out.absolute()}/tls.pem" in (out / "haproxy.cfg").read_text()


def test_cli_tls_name_signs_a_proxy_certificate_with_the_test_ca(state: Path, tmp_path: Path) -> None:
    assert _generate(state, tmp_path, "--tls-name", "push-proxy.internal,10.9.8.7") == 0
    pem = (tmp_path / "tls.pem").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "push-proxy.internal" in san.get_values_for_type(x509.DNSName)
    assert "api.push.apple.com" in san.get_values_for_type(x509.DNSName)
    assert "10.9.8.7" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    ca = x509.load_pem_x509_certificate((state / "ca.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)      # certificate and key belong together
    pem_file = tmp_path / "check.pem"
    pem_file.write_bytes(pem)
    ctx.load_cert_chain(pem_file)


@pytest.mark.parametrize("extra,says", [
    (["--instances", "a,b"], "needs 3 instances"),
    (["--instances", "a,b,host:1/2"], "three"),
    (["--instances", "@/nonexistent/endpoints.json,b,c"], "cannot read"),
    (["--instances", "http://127.0.0.1:1,b,c"], "cannot read http://127.0.0.1:1/endpoints"),
    (["--partitions", "0", "--instances", "a"], "1..4096"),
    (["--partitions", "4097", "--instances", "a"], "1..4096"),
    (["--apns-port", "70000"], "--apns-port must be in 1..65535"),
    (["--fcm-port", "2197"], "must differ"),
    (["--bind", "0.0.0.0 ssl"], "--bind must be an IP address"),
    (["--files-dir", "rel"], "absolute"),
    (["--tls-name", "proxy host"], "--tls-name: 'proxy host' is not a host name"),
    (["--tls-name", "proxy:443"], "--tls-name: 'proxy:443' is not a host name"),
    (["--tls-name", "[::1]"], "--tls-name: '[::1]' is not a host name"),
])
def test_cli_refuses_bad_input_with_a_message(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              extra: list[str], says: str) -> None:
    args = ["proxy-config", "--partitions", "3", "--state-dir", str(state), "--out", str(tmp_path / "o"),
            "--instances", "a,b,c", *extra]
    assert main(args) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "o" / "haproxy.cfg").exists()


def test_cli_without_credentials_says_how_to_make_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _generate(tmp_path / "empty", tmp_path / "o") == 2
    assert "pushsim creds --state-dir" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed (./run.sh test installs it)")
def test_haproxy_accepts_the_generated_config(state: Path, tmp_path: Path) -> None:
    assert _generate(state, tmp_path) == 0
    r = subprocess.run(["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True,
                       timeout=20, cwd="/")     # cwd: map files must not depend on where haproxy runs
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING" not in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed (./run.sh test installs it)")
@pytest.mark.parametrize("n,reuse", [(1, "never"), (2, "safe"), (70, "never")])
def test_haproxy_accepts_every_deployment_size(state: Path, tmp_path: Path, n: int, reuse: str) -> None:
    specs = ",".join(f"10.0.{k // 250}.{k % 250 + 1}" for k in range(n))
    assert main(["proxy-config", "--partitions", str(n), "--instances", specs, "--state-dir", str(state),
                 "--out", str(tmp_path), "--http-reuse", reuse, "--bind", "::"]) == 0
    r = subprocess.run(["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True,
                       timeout=20, cwd="/")
    assert r.returncode == 0 and "WARNING" not in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (./run.sh test installs it)")
def test_promtool_accepts_the_generated_scrape_config(state: Path, tmp_path: Path) -> None:
    assert _generate(state, tmp_path) == 0
    r = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr
