"""The first flight on a fresh APNs connection, with real clients that send before reading SETTINGS.

The fake APNs announces MAX_CONCURRENT_STREAMS 1 until the first valid provider token, as Apple
does. A client cannot obey a limit it has not seen (RFC 9113 §6.5.3), and Node's http2 and h2load
both open many streams at once on a new connection: every one of them must get its 200 — held
behind the first and answered in order — on both HTTP/2 engines.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from _serve_helpers import ephemeral_config, provider_token
from pushsim.server import run_in_thread

pytestmark = pytest.mark.timeout(60)

BURST = 6

# Node's own http2 client (what @parse/node-apn uses): every request is written at once, before
# the server's SETTINGS can have been read.
NODE_BURST = r"""
const http2 = require('http2');
const fs = require('fs');
const [url, ca, jwt, topic, ...tokens] = process.argv.slice(2);
const session = http2.connect(url, url.startsWith('https') ? {ca: fs.readFileSync(ca)} : {});
session.on('error', (e) => { console.error(e); process.exit(2); });
const results = tokens.map((token) => new Promise((resolve) => {
  const req = session.request({':method': 'POST', ':path': `/3/device/${token}`,
    'authorization': `bearer ${jwt}`, 'apns-topic': topic, 'apns-push-type': 'background',
    'apns-priority': '5'});
  let status = null, body = '';
  req.on('response', (h) => { status = h[':status']; });
  req.on('data', (d) => { body += d; });
  req.on('end', () => resolve({status, body}));
  req.on('error', (e) => resolve({status: null, error: String(e.code || e)}));
  req.end('{"aps":{"content-available":1}}');
}));
Promise.all(results).then((r) => { console.log(JSON.stringify(r)); session.close(); });
"""


@pytest.fixture(scope="module", params=["fast", "h2"])
def endpoints(request, tmp_path_factory):
    sim, stop = run_in_thread(ephemeral_config(tmp_path_factory.mktemp("state"), devices="ios=8,android=0",
                                               engine=request.param))
    yield sim.endpoints
    stop()


def _ios_tokens(ep: dict, n: int) -> list[str]:
    got = httpx.get(ep["admin"]["url"] + f"/devices?platform=ios&limit={n}", timeout=10).json()
    return [d["token"] for d in got["devices"]]


def _accepted(ep: dict) -> int:
    return httpx.get(ep["admin"]["url"] + "/stats", timeout=10).json()["accepted"]


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
@pytest.mark.parametrize("scheme", ["url", "h2c_url"])
def test_node_http2_burst_on_a_new_connection_is_all_200(endpoints, scheme, tmp_path: Path):
    script = tmp_path / "burst.js"
    script.write_text(NODE_BURST)
    tokens = (_ios_tokens(endpoints, BURST))
    before = _accepted(endpoints)
    out = subprocess.run(["node", str(script), endpoints["apns"][scheme], endpoints["ca_file"],
                          provider_token(endpoints), endpoints["apns"]["topic"], *tokens],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert [r["status"] for r in results] == [200] * BURST, results
    assert _accepted(endpoints) - before == BURST


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load not installed")
def test_h2load_first_flight_on_fresh_connections_is_all_200(endpoints, tmp_path: Path):
    """`-c 4 -m 100`: four new connections each opening 100 streams at once, twice over."""
    body = tmp_path / "payload.json"
    body.write_bytes(b'{"aps":{"content-available":1}}')
    token = _ios_tokens(endpoints, 1)[0]
    a = endpoints["apns"]
    for _ in range(2):
        out = subprocess.run(
            ["h2load", "-n", "400", "-c", "4", "-m", "100", "-d", str(body),
             "-H", f"authorization: bearer {provider_token(endpoints)}", "-H", f"apns-topic: {a['topic']}",
             "-H", "apns-push-type: background", "-H", "apns-priority: 5",
             f"{a['h2c_url']}/3/device/{token}"], capture_output=True, text=True, timeout=30)
        assert re.search(r"status codes: 400 2xx, 0 3xx, 0 4xx, 0 5xx", out.stdout), out.stdout
        assert re.search(r"requests: 400 total, 400 started, 400 done, 400 succeeded, 0 failed, 0 errored",
                         out.stdout), out.stdout


NODE_CLIENTS = Path(__file__).resolve().parents[1] / "node"


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_node_apn_library_burst_on_a_new_connection_is_all_sent(endpoints):
    """@parse/node-apn, the library with which the refusals were first seen: six at once."""
    assert (NODE_CLIENTS / "node_modules" / "@parse" / "node-apn").is_dir(), \
        "tests/node is not installed: ./run.sh test runs `npm ci` there"
    a = endpoints["apns"]
    host, port = a["url"].removeprefix("https://").rsplit(":", 1)
    tokens = _ios_tokens(endpoints, BURST)
    out = subprocess.run(["node", str(NODE_CLIENTS / "apn_burst.js"), host, port, endpoints["ca_file"], a["key_file"], a["key_id"], a["team_id"], a["topic"], *tokens],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["failed"] == [] and sorted(result["sent"]) == sorted(tokens), result
