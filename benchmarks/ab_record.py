"""Record what h2load sends on one connection (-c 1 -m 100, the apns benchmark's workload) through a
proxy to a live `pushsim serve`, for `ab_replay.py`.

    python benchmarks/ab_record.py SRC OUT.pkl [N]    (serve from tree SRC; state dir next to OUT)

Writes a pickle {"chunks": [bytes as received], "n": N, "state": state dir}. The JWT inside is
valid for an hour: record again after that.
"""
import asyncio
import pickle
import signal
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import processes as P, workloads as W  # noqa: E402
from benchmarks.ab_serve import start  # noqa: E402
from pushsim.cli.sender_auth import apns_provider_token  # noqa: E402

async def main(src, out, n):
    tmp = Path(out).resolve().parent
    proc, ep = start("rec", src, tmp, 2000)   # state dir TMP/state-rec
    try:
        apns = ep["apns"]
        toks = W.fleet_tokens(ep["admin"]["url"], 1000, "ios")
        jwt = apns_provider_token(apns)
        port = int(apns["h2c_url"].rsplit(":", 1)[1])
        chunks = []
        async def handle(r, w):
            ur, uw = await asyncio.open_connection("127.0.0.1", port)
            async def c2s():
                while data := await r.read(65536):
                    chunks.append(data)
                    uw.write(data)
                uw.close()
            async def s2c():
                while data := await ur.read(65536):
                    w.write(data)
                w.close()
            await asyncio.gather(c2s(), s2c(), return_exceptions=True)
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        pport = srv.sockets[0].getsockname()[1]
        uris = tmp / "rec-uris.txt"
        uris.write_text("".join(f"http://127.0.0.1:{pport}/3/device/{t}\n" for t in toks))
        payload = W.apns_payload(tmp)
        cmd = ["h2load", "-n", str(n), "-c", "1", "-m", "100", "-d", str(payload),
               "-H", "apns-push-type: background", "-H", "apns-priority: 5", "-H", f"apns-topic: {apns['topic']}",
               "-H", f"authorization: bearer {jwt}", "-i", str(uris)]
        p = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
        o, _ = await p.communicate()
        print(o.decode().splitlines()[-12:])
        await asyncio.sleep(0.5)
        srv.close()
        pickle.dump({"chunks": chunks, "n": n, "state": str(tmp / "state-rec")}, open(out, "wb"))
        print(len(chunks), sum(map(len, chunks)))
    finally:
        P.stop(proc, signal.SIGINT)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 20000))
