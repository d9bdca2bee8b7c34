"""A loopback pair of real Syncthing instances: "this machine" and "the phone".

Used by the tests and by ``make demo``. Each instance gets its own home
directory and free ports on 127.0.0.1, and its ``config.xml`` is rewritten
*before* its first start so that nothing ever leaves the machine: no global or
local discovery, no relays, no NAT traversal, no usage or crash reports, no
upgrades, and only explicit ``tcp://127.0.0.1:PORT`` addresses.

Usage::

    with SyncthingPair.create(tmp_dir) as pair:
        target = pair.target(id="pixel")
        ...
        pair.stop_phone()      # the phone goes offline
        pair.start_phone()     # and comes back
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import attrs

from providers.base import Closing
from providers.syncthing.client import PROVIDER, SyncthingClient, SyncthingUnreachableError
from providers.syncthing.target import SyncthingTarget
from reconciler.errors import ProviderError

_ENV = {
    "STNODEFAULTFOLDER": "1",
    "STNOUPGRADE": "1",
    "STNORESTART": "1",
    # The SHA-256 code named, not chosen by a benchmark of both at every
    # start (a second of each start; minio's is the faster on x86-64).
    "STHASHING": "minio",
}

# Options set before the first start. Each one closes a way Syncthing would
# otherwise talk to the internet or the LAN.
_OFFLINE_OPTIONS = {
    "globalAnnounceEnabled": "false",
    "localAnnounceEnabled": "false",
    "relaysEnabled": "false",
    "natEnabled": "false",
    "crashReportingEnabled": "false",
    "startBrowser": "false",
    "urAccepted": "-1",
    "autoUpgradeIntervalH": "0",
    # 0 turns STUN off (it is only used for QUIC, which we do not listen on).
    "stunKeepaliveStartS": "0",
}


def find_syncthing() -> str:
    """The syncthing program's path; ProviderError if it is not installed."""
    found = shutil.which("syncthing")
    if found is None:
        raise ProviderError(
            "the syncthing program is not installed (apt-get install syncthing, or `make`)",
            provider=PROVIDER,
        )
    return found


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _set_child(parent: ET.Element, tag: str, text: str) -> None:
    node = parent.find(tag)
    if node is None:
        node = ET.SubElement(parent, tag)
    node.text = text


def write_offline_config(
    config: Path,
    *,
    name: str,
    gui_port: int,
    listen_port: int,
    api_key: str,
    reconnect_s: int = 60,
) -> None:
    """Rewrite a freshly generated config.xml for loopback-only operation."""
    tree = ET.parse(config)
    root = tree.getroot()
    options = root.find("options")
    gui = root.find("gui")
    if options is None or gui is None:
        raise ProviderError(f"{config}: not a Syncthing config (no options/gui)", provider=PROVIDER)
    for key, value in _OFFLINE_OPTIONS.items():
        _set_child(options, key, value)
    _set_child(options, "reconnectionIntervalS", str(reconnect_s))
    for server in options.findall("globalAnnounceServer"):
        options.remove(server)
    # With no entry at all Syncthing puts "default" back when it loads the
    # config; one empty entry names no server and stays as it is.
    ET.SubElement(options, "globalAnnounceServer").text = ""
    for listen in options.findall("listenAddress"):
        options.remove(listen)
    ET.SubElement(options, "listenAddress").text = f"tcp://127.0.0.1:{listen_port}"
    gui.set("tls", "false")
    _set_child(gui, "address", f"127.0.0.1:{gui_port}")
    _set_child(gui, "apikey", api_key)
    # Our own device entry says "dynamic" as generated, which means
    # discovery; give it its one loopback address. (Remote devices are added
    # later through the API, always with an explicit address.)
    for device in root.findall("device"):
        device.set("name", name)
        for a in device.findall("address"):
            device.remove(a)
        ET.SubElement(device, "address").text = f"tcp://127.0.0.1:{listen_port}"
    tree.write(config, encoding="unicode")


@attrs.define(kw_only=True)
class SyncthingInstance:
    """One configured Syncthing home and, while started, its process."""

    name: str
    home: Path
    gui_port: int
    listen_port: int
    api_key: str = attrs.field(repr=False)
    device_id: str
    program: str
    _process: subprocess.Popen[bytes] | None = attrs.field(default=None, init=False)

    @classmethod
    def generate(
        cls, home: Path, *, name: str, program: str | None = None, reconnect_s: int = 60
    ) -> SyncthingInstance:
        """Generate keys and a loopback-only config in ``home``; start nothing."""
        program = program or find_syncthing()
        home.mkdir(parents=True, exist_ok=True)
        _run([program, "generate", f"--home={home}", "--no-default-folder", "--skip-port-probing"])
        device_id = _run([program, "serve", f"--home={home}", "--device-id"]).strip()
        instance = cls(
            name=name,
            home=home,
            gui_port=free_port(),
            listen_port=free_port(),
            api_key=secrets.token_urlsafe(24),
            device_id=device_id,
            program=program,
        )
        write_offline_config(
            home / "config.xml",
            name=name,
            gui_port=instance.gui_port,
            listen_port=instance.listen_port,
            api_key=instance.api_key,
            reconnect_s=reconnect_s,
        )
        return instance

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gui_port}"

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.listen_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process else None

    def pids(self) -> tuple[int, ...]:
        """The process we started and its children (Syncthing 1.19 runs a
        small monitor process that starts the real server as its child)."""
        if not self.running or self._process is None:
            return ()
        pid = self._process.pid
        children: list[int] = []
        # Linux lists children per thread, and Go forks from any thread.
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                children += (int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
        return (pid, *sorted(set(children)))

    def client(self, *, timeout: float = 10.0) -> SyncthingClient:
        return SyncthingClient(url=self.url, api_key=self.api_key, timeout=timeout)

    def start(self) -> None:
        """Start ``syncthing serve`` in the background (see ``wait_ready``)."""
        if self.running:
            return
        env = {**os.environ, **_ENV}
        # stderr gets only what happens before the log file opens (or a panic);
        # the parent's handle is closed at once, the child keeps its own.
        with open(self.home / "stderr.log", "ab") as err:
            self._process = subprocess.Popen(
                [
                    self.program,
                    "serve",
                    f"--home={self.home}",
                    "--no-browser",
                    "--no-restart",
                    "--no-upgrade",
                    f"--logfile={self.home / 'syncthing.log'}",
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def wait_ready(self, *, timeout: float = 30.0, rebinds: int = 2) -> None:
        """Wait until the REST API answers; ProviderError if it never does.

        A port found free can be taken before Syncthing binds it (another
        program, another test run): if it exits at start, it is given new
        ports and started again, ``rebinds`` times at most."""
        deadline = time.monotonic() + timeout
        while True:
            with self.client(timeout=2.0) as client:
                while self.running:
                    try:
                        client.ping()
                        return
                    except SyncthingUnreachableError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
            if rebinds <= 0:
                raise ProviderError(
                    f"{self.name}: syncthing exited at start; see {self.home}/syncthing.log",
                    provider=PROVIDER,
                )
            rebinds -= 1
            self._rebind()
            self.start()

    def _rebind(self) -> None:
        """Move the GUI and listen addresses to ports free now."""
        self.gui_port, self.listen_port = free_port(), free_port()
        config = self.home / "config.xml"
        tree = ET.parse(config)
        root = tree.getroot()
        for listen in root.iter("listenAddress"):
            listen.text = self.address
        for gui in root.iter("gui"):
            _set_child(gui, "address", f"127.0.0.1:{self.gui_port}")
        for device in root.findall("device"):
            if device.get("id") == self.device_id:
                for a in device.findall("address"):
                    a.text = self.address
        tree.write(config, encoding="unicode")

    def stop(self, *, timeout: float = 15.0, ask: bool = True) -> None:
        """Shut down cleanly through the API (``ask=False``: by a SIGTERM at
        once), then by PID if it will not go.

        The monitor process exits when its server child does, and passes a
        SIGTERM on to it, so waiting on and signalling our own PID suffices.
        """
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            if ask:
                with contextlib.suppress(ProviderError), self.client(timeout=2.0) as client:
                    client.shutdown()
            else:
                process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._process = None

    def kill(self) -> None:
        """SIGKILL the monitor and its server, without waiting (``stop`` waits;
        the server, no longer our child, is reaped by whoever adopts it)."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@attrs.define(kw_only=True)
class SyncthingPair(Closing):
    """This machine (send-only folder) paired with "the phone" (receive-only,
    ignoring deletes), both on loopback."""

    local: SyncthingInstance
    phone: SyncthingInstance
    folder_id: str
    local_folder: Path
    phone_folder: Path

    @classmethod
    def create(
        cls,
        base: Path,
        *,
        folder_id: str = "pixel-backup",
        phone_ignore_delete: bool = True,
        program: str | None = None,
        timeout: float = 30.0,
    ) -> SyncthingPair:
        """Generate, start, pair and share; returns once both are connected."""
        program = program or find_syncthing()
        # Both sides dial from their listen port, so if they dial each other
        # at the same moment TCP's simultaneous open joins the two attempts
        # into one connection on which both wait for a TLS server: it hangs
        # for 20 s. So the phone does the dialling (at start, and every 2 s
        # while apart), as a real phone coming back online would, and this
        # machine never reaches it (below).
        local = SyncthingInstance.generate(
            base / "local-home", name="this-machine", program=program, reconnect_s=60
        )
        phone = SyncthingInstance.generate(
            base / "phone-home", name="pixel", program=program, reconnect_s=2
        )
        pair = cls(
            local=local,
            phone=phone,
            folder_id=folder_id,
            local_folder=base / "local-folder",
            phone_folder=base / "phone-folder",
        )
        pair.local_folder.mkdir(parents=True, exist_ok=True)
        pair.phone_folder.mkdir(parents=True, exist_ok=True)
        try:
            local.start()
            phone.start()
            local.wait_ready(timeout=timeout)
            phone.wait_ready(timeout=timeout)
            with local.client() as lc, phone.client() as pc:
                # This machine knows the phone at a loopback port nothing
                # listens on: only the phone dials. A dial of this machine's,
                # refused while the phone did not know it yet, left its
                # connection's ports closing; the phone's own dial, between
                # the same two ports the other way, then hung 15 s (about one
                # pair in fifteen).
                nowhere = f"tcp://127.0.0.1:{free_port()}"
                lc.add_device(device_id=phone.device_id, name="pixel", address=nowhere)
                # The long rescan interval and no watcher mean every change is
                # seen only when someone asks for a scan: deterministic tests.
                lc.add_folder(
                    folder_id=folder_id,
                    path=str(pair.local_folder),
                    type="sendonly",
                    device_ids=(phone.device_id,),
                    rescan_interval_s=86400,
                )
                pc.add_device(device_id=local.device_id, name="this-machine", address=local.address)
                pc.add_folder(
                    folder_id=folder_id,
                    path=str(pair.phone_folder),
                    type="receiveonly",
                    device_ids=(local.device_id,),
                    rescan_interval_s=86400,
                    ignore_delete=phone_ignore_delete,
                )
            pair._connect_phone(timeout=timeout)
        except BaseException:
            pair.close()
            raise
        return pair

    def target(
        self, *, id: str = "pixel", timeout: float = 10.0, liveness_timeout: float = 10.0
    ) -> SyncthingTarget:
        """A SyncthingTarget on this machine's side of the pair."""
        return SyncthingTarget(
            id=id,
            folder_path=self.local_folder,
            folder_id=self.folder_id,
            device_id=self.phone.device_id,
            url=self.local.url,
            api_key=self.local.api_key,
            timeout=timeout,
            liveness_timeout=liveness_timeout,
        )

    def wait_connected(self, *, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self.local.client() as client:
            while True:
                conn = client.connections().get(self.phone.device_id)
                if conn is not None and conn.connected:
                    return
                if time.monotonic() > deadline:
                    raise ProviderError(
                        f"the phone instance did not connect within {timeout:g} s; "
                        f"see {self.local.home}/syncthing.log",
                        provider=PROVIDER,
                    )
                time.sleep(0.05)

    def stop_phone(self) -> None:
        """Take the phone offline (a clean shutdown of its instance)."""
        self.phone.stop()
        # Wait until this machine has noticed, so callers see "offline".
        deadline = time.monotonic() + 15
        with self.local.client() as client:
            while time.monotonic() < deadline:
                conn = client.connections().get(self.phone.device_id)
                if conn is None or not conn.connected:
                    return
                time.sleep(0.05)

    def start_phone(self, *, timeout: float = 30.0) -> None:
        """Bring the phone back and wait until the pair is connected again."""
        self.phone.start()
        self.phone.wait_ready(timeout=timeout)
        self._connect_phone(timeout=timeout)

    def _connect_phone(self, *, timeout: float) -> None:
        """Wait for the connection; if it hangs, restart the phone and wait again.

        On loopback the two usually connect within half a second. A rare
        simultaneous dial (see ``create``) hangs for 20 s instead; a fresh
        phone process dials again at once, which is much faster than waiting.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                self.wait_connected(timeout=min(5.0, max(left, 0.1)))
                return
            except ProviderError:
                if time.monotonic() + 5.0 > deadline:
                    raise
            self.phone.stop()
            self.phone.start()
            self.phone.wait_ready(timeout=max(deadline - time.monotonic(), 0.1))

    def scan_phone(self, sub: str | None = None) -> None:
        """Ask the phone's instance to rescan (after changing a file there)."""
        with self.phone.client() as client:
            client.scan(self.folder_id, sub)

    def close(self) -> None:
        """Stop both instances for good (their homes and folders are left in
        place, not to be started again). Killed, not asked: a clean stop
        takes a second per instance (its connections closing), and the tests
        start ~100 pairs. ``stop_phone``, whose phone starts again, asks."""
        for instance in (self.phone, self.local):
            instance.kill()
        for instance in (self.phone, self.local):
            instance.stop(ask=False)

    def addresses(self) -> tuple[str, ...]:
        """Every address the pair was configured to listen on (all loopback)."""
        return tuple(
            f"127.0.0.1:{port}"
            for inst in (self.local, self.phone)
            for port in (inst.gui_port, inst.listen_port)
        )


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(
            argv,
            env={**os.environ, **_ENV},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise ProviderError(f"{' '.join(argv)} failed: {e}", provider=PROVIDER) from e
    return done.stdout
