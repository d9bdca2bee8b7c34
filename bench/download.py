"""Benchmark: iCloud downloads, ours (``reconcile apply --only download``) vs icloudpd.

Both download the same N assets from the same emulator, in the same run, with
the same latency injected into every answer (Apple's round trip), through the
same local TLS proxy: icloudpd cannot be pointed at another host (PyPI ships
it as one frozen binary), so both are given ``HTTPS_PROXY`` and a CA made for
this run (``REQUESTS_CA_BUNDLE``), and the proxy sends every tunnel to the
emulator, which reads Apple's host from the ``Host`` header. Prints ours,
icloudpd's and the ratio per file size; asserts nothing.

Apple is never contacted: the benchmark re-runs itself in a network
namespace of its own (``unshare --net``) holding only a loopback interface,
checks that nothing else is there, and stops with an error otherwise. A
request that escaped the proxy would find no route, not Apple.

icloudpd is installed from PyPI into ``bench/.venv-icloudpd`` on first use
(its pins would clash with our pyicloud).

Usage: ``.venv/bin/python bench/download.py [--assets 2000] [--latency 0.05]
[--sizes 4096,524288] [--streams N]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ICLOUDPD = "icloudpd==1.32.3"
IPD_VENV = ROOT / "bench" / ".venv-icloudpd"
#: The only hosts the proxy tunnels: Apple's, which the emulator answers for.
APPLE_SUFFIXES = (".apple.com", ".icloud.com", ".icloud-content.com")
USERNAME = "bench@example.com"
PASSWORD = "correct horse battery staple"


# ------------------------------------------------------------------ isolation


def _ensure_icloudpd() -> Path:
    exe = IPD_VENV / "bin" / "icloudpd"
    if not exe.exists():
        print(f"installing {ICLOUDPD} into {IPD_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(IPD_VENV)], check=True)
        pip = [str(IPD_VENV / "bin" / "python"), "-m", "pip", "install", "-q", ICLOUDPD]
        subprocess.run(pip, check=True)
    return exe


def _reexec_isolated(argv: list[str]) -> int:
    unshare = shutil.which("unshare")
    if unshare is None:
        raise SystemExit("error: unshare (util-linux) is needed to keep the benchmark off the net")
    cmd = [unshare, "--map-root-user", "--net", sys.executable, __file__, "--isolated", *argv]
    return subprocess.run(cmd, check=False).returncode


def _check_isolated() -> None:
    """Only a loopback interface here, brought up; else stop."""
    with open("/proc/net/dev", encoding="ascii") as fh:
        names = [line.split(":")[0].strip() for line in fh.readlines()[2:]]
    if names != ["lo"]:
        raise SystemExit(f"error: not isolated from the network (interfaces: {names}); stopping")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex(("17.253.144.10", 443)) == 0:  # an Apple address
            raise SystemExit("error: an outside address answered inside the namespace; stopping")


# ------------------------------------------------------------------ TLS proxy


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _make_ca(work: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for Apple's host names signed by it (openssl)."""
    ca_key, ca, key, csr, cert = (work / n for n in ("ca.key", "ca.pem", "k.pem", "r.csr", "c.pem"))
    new_key = ("-newkey", "rsa:2048", "-nodes")
    ca_ext = ("-addext", "basicConstraints=critical,CA:TRUE")
    ca_ext += ("-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ca_ext += ("-subj", "/CN=reconcile bench CA")
    _openssl("req", "-x509", *new_key, "-days", "2", "-keyout", ca_key, "-out", ca, *ca_ext)
    ext = work / "ext.cnf"
    names = ",".join(f"DNS:*{s}" for s in APPLE_SUFFIXES)
    ext.write_text(
        f"subjectAltName={names}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    _openssl("req", *new_key, "-keyout", key, "-out", csr, "-subj", "/CN=icloud.com")
    signed = ("-CAcreateserial", "-days", "2", "-out", cert, "-extfile", ext)
    _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, *signed)
    return ca, cert, key


class TlsProxy:
    """``CONNECT host:443`` for Apple's hosts only: TLS ends here, and the
    plain bytes go to the emulator on ``upstream``."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self.upstream = 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0, limit=1 << 20)
        )
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await reader.readline()).decode("latin-1").split()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            host = request[1].rsplit(":", 1)[0] if len(request) == 3 else ""
            if request[:1] != ["CONNECT"] or not host.endswith(APPLE_SUFFIXES):
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await writer.start_tls(self.ctx)
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
            for w in (writer, up_writer):
                sock = w.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(1 << 18):
            dst.write(data)
            await dst.drain()
    except (OSError, ssl.SSLError, ConnectionError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            dst.close()


# ------------------------------------------------------------------ emulator


def serve(args: argparse.Namespace) -> int:
    """Child process: an emulator with ``--assets`` files of ``--size`` bytes."""
    from providers.icloud.emulator import Account
    from providers.icloud.emulator.server import EmulatorServer
    from providers.icloud.emulator.testing import session_file_stem

    account = Account(username=USERNAME, password=PASSWORD)
    rng = random.Random(args.size)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    for i in range(args.assets):
        # A JPEG's first bytes, then noise: unique content of exactly --size bytes.
        data = b"\xff\xd8\xff\xe0" + rng.randbytes(args.size - 4)
        account.add_asset(data, f"IMG_{i:05d}.JPG", asset_date=start + timedelta(hours=i))
    with EmulatorServer(account, latency=args.latency) as server:
        for directory in (Path(d) for d in args.session_dirs):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            session, trust = server.trusted_session()
            path = directory / f"{session_file_stem(USERNAME)}.session"
            path.write_text(json.dumps({"session_token": session, "trust_token": trust}))
            path.chmod(0o600)
        print(server.port, flush=True)
        sys.stdin.read()  # until the parent closes our stdin
    return 0


@contextlib.contextmanager
def emulator(size: int, assets: int, latency: float, sessions: list[Path]) -> Iterator[int]:
    cmd = [sys.executable, __file__, "--serve", "--size", str(size), "--assets", str(assets)]
    cmd += ["--latency", str(latency), "--session-dirs", *map(str, sessions)]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        port = int(proc.stdout.readline())
        try:
            yield port
        finally:
            proc.stdin.close()
            proc.wait(timeout=30)


# ------------------------------------------------------------------ the two runs


def _env(ca: Path, proxy: TlsProxy) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(
        HTTPS_PROXY=f"http://127.0.0.1:{proxy.port}",
        https_proxy=f"http://127.0.0.1:{proxy.port}",
        REQUESTS_CA_BUNDLE=str(ca),
        SSL_CERT_FILE=str(ca),
        ICLOUD_USERNAME=USERNAME,
        ICLOUD_PASSWORD=PASSWORD,
    )
    return env


def _files(root: Path) -> tuple[int, int]:
    found = [p for p in root.rglob("*.JPG") if p.is_file()]
    return len(found), sum(p.stat().st_size for p in found)


def run_ours(work: Path, env: dict[str, str], streams: int | None) -> tuple[float, int, int]:
    reconcile = str(Path(sys.executable).with_name("reconcile"))
    workers = f"[apply]\ndownload_streams = {streams}\n" if streams else ""
    config = work / "desired_state.toml"
    config.write_text(
        '[library]\npath = "library"\n[state]\ndir = "state"\n'
        '[sources.icloud]\nkind = "icloud"\n'
        '[targets.nas]\nkind = "filesystem"\npath = "nas"\nsame_disk_ok = true\n' + workers
    )
    for store in ("library", "nas"):
        subprocess.run(
            [reconcile, "init-target", str(work / store), "--id", store, "--create"],
            check=True,
            capture_output=True,
            env=env,
        )
    cmd = [reconcile, "apply", "-c", str(config), "--yes", "--only", "download", "--quiet"]
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        out = done.stdout + done.stderr
        raise SystemExit(f"error: reconcile failed ({done.returncode}):\n{out}")
    return (seconds, *_files(work / "library"))


def run_icloudpd(work: Path, env: dict[str, str], exe: Path) -> tuple[float, int, int]:
    cmd = [str(exe), "--username", USERNAME, "--password", PASSWORD]
    cmd += ["--cookie-directory", str(work / "cookies"), "--directory", str(work / "photos")]
    cmd += ["--no-progress-bar", "--log-level", "error", "--password-provider", "parameter"]
    t = time.perf_counter()
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"error: icloudpd failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return (seconds, *_files(work / "photos"))


def bench(args: argparse.Namespace) -> int:
    _check_isolated()
    exe = IPD_VENV / "bin" / "icloudpd"
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(
        f"cores: {os.cpu_count()}; load average before: {load}; {args.assets} assets, "
        f"{args.latency * 1000:.0f} ms added to every answer; ours and {ICLOUDPD} through "
        "the same TLS proxy to the same emulator"
    )
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
        work = Path(tmp)
        ca, cert, key = _make_ca(work)
        proxy = TlsProxy(cert, key)
        env = _env(ca, proxy)
        print(f"{'size':>10}  {'ours':>8}  {'icloudpd':>8}  ratio   (files/s ours, icloudpd)")
        for size in args.sizes:
            ours_dir, ipd_dir = work / f"ours-{size}", work / f"ipd-{size}"
            sessions = [ours_dir / "state" / "icloud-session", ipd_dir / "cookies"]
            with emulator(size, args.assets, args.latency, sessions) as port:
                proxy.upstream = port
                ours = run_ours(ours_dir, env, args.streams)
                theirs = () if args.no_icloudpd else run_icloudpd(ipd_dir, env, exe)
            for name, got in (("ours", ours), ("icloudpd", theirs)):
                if got and got[1:] != (args.assets, args.assets * size):
                    raise SystemExit(
                        f"error: {name} downloaded {got[1]} files, {got[2]} bytes; expected "
                        f"{args.assets}, {args.assets * size}"
                    )
            if theirs:
                print(
                    f"{size:>10}  {ours[0]:7.1f}s  {theirs[0]:7.1f}s  {theirs[0] / ours[0]:4.1f}x"
                    f"   ({args.assets / ours[0]:.0f}, {args.assets / theirs[0]:.0f})",
                    flush=True,
                )
            else:
                print(f"{size:>10}  {ours[0]:7.1f}s  {'-':>8}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per answer")
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[4096, 512 * 1024],
        help="file sizes in bytes, comma-separated (default: 4 KiB and 512 KiB)",
    )
    parser.add_argument("--streams", type=int, help="our parallel downloads (default: config's)")
    parser.add_argument("--no-icloudpd", action="store_true", help="time ours only")
    parser.add_argument("--isolated", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--session-dirs", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args)
    if not args.isolated:
        if not args.no_icloudpd:
            _ensure_icloudpd()
        return _reexec_isolated(argv)
    return bench(args)


if __name__ == "__main__":
    raise SystemExit(main())
