"""A small typed client for the part of Syncthing's REST API this tool uses.

Every call carries the ``X-API-Key`` header and a timeout; every failure is a
``ProviderError`` naming "syncthing". The failures a person must tell apart get
their own subclass and message: Syncthing down, the API key rejected, a folder
or a device Syncthing does not know. JSON never leaves this module: answers
become the frozen values below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs
import requests

from providers.base import Closing
from reconciler.errors import ProviderError

PROVIDER = "syncthing"
DEFAULT_URL = "http://127.0.0.1:8384"
DEFAULT_TIMEOUT = 10.0


class SyncthingUnreachableError(ProviderError):
    """Nothing answered at the URL (not running, wrong port) or it timed out."""


class SyncthingAuthError(ProviderError):
    """Syncthing answered but rejected the API key."""


class UnknownFolderError(ProviderError):
    """Syncthing has no folder with this id."""


class UnknownDeviceError(ProviderError):
    """Syncthing has no device with this id."""


@attrs.frozen(kw_only=True)
class FileVersion:
    """One device's (or the global) record of a file in Syncthing's index."""

    name: str
    size: int
    deleted: bool
    invalid: bool
    version: tuple[str, ...]
    #: Ignored here by a pattern (1.19 marks such a record ``invalid`` too).
    ignored: bool = False
    modified: str
    #: The short id of the device that made this version (``modifiedBy``).
    modified_by: str = ""


@attrs.frozen(kw_only=True)
class Holder:
    """A device that announced the global version of a file."""

    device_id: str
    from_temporary: bool


@attrs.frozen(kw_only=True)
class DbFile:
    """``GET /rest/db/file``: this machine's copy, the global one, and who holds it."""

    local: FileVersion
    global_: FileVersion
    availability: tuple[Holder, ...]


@attrs.frozen(kw_only=True)
class Completion:
    """``GET /rest/db/completion``: a folder-wide progress figure, never a proof."""

    completion: float
    need_items: int
    need_bytes: int
    need_deletes: int
    global_items: int


@attrs.frozen(kw_only=True)
class Connection:
    device_id: str
    connected: bool
    paused: bool
    address: str


@attrs.frozen(kw_only=True)
class FolderConfig:
    id: str
    label: str
    path: str
    type: str
    device_ids: tuple[str, ...]
    paused: bool
    ignore_delete: bool
    #: The devices it is shared with as untrusted ones (an encryption
    #: password set): they receive only ciphertext.
    encrypted_for: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class DeviceConfig:
    device_id: str
    name: str
    addresses: tuple[str, ...]
    paused: bool
    #: Every folder shared with it must be encrypted for it (ciphertext only).
    untrusted: bool = False


def _file_version(raw: Mapping[str, Any]) -> FileVersion:
    return FileVersion(
        name=str(raw.get("name", "")),
        size=int(raw.get("size", 0)),
        deleted=bool(raw.get("deleted", False)),
        invalid=bool(raw.get("invalid", False)),
        ignored=bool(raw.get("ignored", False)),
        # 1.19 sends the version vector as ["SHORTID:counter", ...]; kept as
        # strings because only equality matters to us.
        version=tuple(str(v) for v in raw.get("version") or ()),
        modified=str(raw.get("modified", "")),
        modified_by=str(raw.get("modifiedBy", "")),
    )


def parse_time(text: str) -> datetime | None:
    """Syncthing's RFC 3339 timestamps (nanoseconds, offset) as aware datetimes.

    The zero time (``0001-01-01…`` or 1970) means "never" and gives None.
    """
    if not text or text.startswith(("0001-", "1970-")):
        return None
    head, sep, tail = text.partition(".")
    if sep:
        # Python parses at most microseconds: trim the fraction, keep the offset.
        digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]
        offset = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{offset}"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


class SyncthingClient(Closing):
    """Talks to one Syncthing instance. Holds a ``requests.Session``: close it."""

    def __init__(
        self, *, url: str = DEFAULT_URL, api_key: str, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers["X-API-Key"] = api_key
        self._folders_seen: set[str] = set()

    def close(self) -> None:
        self._session.close()

    # ------------------------------------------------------------ transport

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        on_missing: Callable[[str], ProviderError] | None = None,
        missing: tuple[int, ...] = (404,),
    ) -> requests.Response:
        where = f"{method} {self.url}{path}"
        try:
            resp = self._session.request(
                method, self.url + path, params=params, json=body, timeout=self.timeout
            )
        except requests.Timeout as e:
            raise SyncthingUnreachableError(
                f"Syncthing at {self.url} did not answer within {self.timeout:g} s ({where})",
                provider=PROVIDER,
                transient=True,
            ) from e
        except requests.ConnectionError as e:
            raise SyncthingUnreachableError(
                f"Syncthing is not running or not reachable at {self.url}; start it, "
                "or fix the url",
                provider=PROVIDER,
                transient=True,
            ) from e
        except requests.RequestException as e:
            raise ProviderError(f"{where} failed: {e}", provider=PROVIDER) from e
        if resp.status_code in (401, 403):
            raise SyncthingAuthError(
                f"Syncthing at {self.url} rejected the API key (HTTP {resp.status_code}); "
                "copy the key from Syncthing's Settings > General > API Key",
                provider=PROVIDER,
            )
        if resp.status_code in missing and on_missing is not None:
            raise on_missing(resp.text.strip())
        if resp.status_code >= 400:
            raise ProviderError(
                f"{where} failed: HTTP {resp.status_code}: {_said(resp.text)}",
                provider=PROVIDER,
                transient=resp.status_code >= 500,
            )
        return resp

    def _json(self, resp: requests.Response) -> Any:
        try:
            return resp.json()
        except ValueError as e:
            raise ProviderError(
                f"{resp.request.method} {resp.url}: answer is not JSON", provider=PROVIDER
            ) from e

    def _unknown_folder(self, folder: str) -> Callable[[str], ProviderError]:
        return lambda _text: UnknownFolderError(
            f"Syncthing at {self.url} has no folder with id {folder!r}; "
            "check the folder id in Syncthing's folder settings",
            provider=PROVIDER,
        )

    def _unknown_device(self, device: str) -> Callable[[str], ProviderError]:
        return lambda _text: UnknownDeviceError(
            f"Syncthing at {self.url} has no device {device}; add the phone as a remote "
            "device in Syncthing, or fix the device id",
            provider=PROVIDER,
        )

    # ------------------------------------------------------------ system

    def my_id(self) -> str:
        """This instance's own device id (also proves the key works)."""
        raw = self._json(self._request("GET", "/rest/system/status"))
        return str(raw["myID"])

    def ping(self) -> None:
        self._request("GET", "/rest/system/ping")

    def connections(self) -> dict[str, Connection]:
        raw = self._json(self._request("GET", "/rest/system/connections"))
        out: dict[str, Connection] = {}
        for dev, c in (raw.get("connections") or {}).items():
            out[dev] = Connection(
                device_id=dev,
                connected=bool(c.get("connected", False)),
                paused=bool(c.get("paused", False)),
                address=str(c.get("address", "")),
            )
        return out

    def last_seen(self, device: str) -> datetime | None:
        """When this instance last talked to ``device`` (None: never)."""
        raw = self._json(self._request("GET", "/rest/stats/device"))
        entry = (raw or {}).get(device) or {}
        return parse_time(str(entry.get("lastSeen", "")))

    def shutdown(self) -> None:
        self._request("POST", "/rest/system/shutdown")

    # ------------------------------------------------------------ config

    def folder(self, folder: str) -> FolderConfig:
        raw = self._json(
            self._request(
                "GET", f"/rest/config/folders/{folder}", on_missing=self._unknown_folder(folder)
            )
        )
        self._folders_seen.add(folder)
        return FolderConfig(
            id=str(raw["id"]),
            label=str(raw.get("label", "")),
            path=str(raw.get("path", "")),
            type=str(raw.get("type", "")),
            device_ids=tuple(str(d["deviceID"]) for d in raw.get("devices") or ()),
            paused=bool(raw.get("paused", False)),
            ignore_delete=bool(raw.get("ignoreDelete", False)),
            encrypted_for=tuple(
                str(d["deviceID"]) for d in raw.get("devices") or () if d.get("encryptionPassword")
            ),
        )

    def device(self, device: str) -> DeviceConfig:
        raw = self._json(
            self._request(
                "GET",
                f"/rest/config/devices/{device}",
                on_missing=self._unknown_device(device),
                missing=(400, 404),  # 400: not even a well-formed device id
            )
        )
        return DeviceConfig(
            device_id=str(raw["deviceID"]),
            name=str(raw.get("name", "")),
            addresses=tuple(str(a) for a in raw.get("addresses") or ()),
            paused=bool(raw.get("paused", False)),
            untrusted=bool(raw.get("untrusted", False)),
        )

    def add_device(self, *, device_id: str, name: str, address: str) -> None:
        """Add (or replace) a remote device with one explicit address.

        Never ``dynamic``: that would send discovery traffic off the machine.
        """
        self._request(
            "POST",
            "/rest/config/devices",
            body={"deviceID": device_id, "name": name, "addresses": [address]},
        )

    def add_folder(
        self,
        *,
        folder_id: str,
        path: str,
        type: str,
        device_ids: tuple[str, ...],
        rescan_interval_s: int = 3600,
        fs_watcher: bool = False,
        ignore_delete: bool = False,
    ) -> None:
        self._request(
            "POST",
            "/rest/config/folders",
            body={
                "id": folder_id,
                "label": folder_id,
                "path": path,
                "type": type,
                "devices": [{"deviceID": d} for d in device_ids],
                "rescanIntervalS": rescan_interval_s,
                "fsWatcherEnabled": fs_watcher,
                "ignoreDelete": ignore_delete,
            },
        )

    # ------------------------------------------------------------ database

    def scan(self, folder: str, sub: str | None = None) -> None:
        """Rescan the folder (or one path in it) now; returns when the scan is done."""
        params = {"folder": folder}
        if sub is not None:
            params["sub"] = sub
        try:
            self._request("POST", "/rest/db/scan", params=params)
        except (SyncthingUnreachableError, SyncthingAuthError):
            raise
        except ProviderError:
            # 1.19 answers an unknown folder here with a bare 500: ask the
            # config, which says 404 for it, and raise the clearer error.
            self.folder(folder)
            raise

    def file(self, folder: str, name: str) -> DbFile | None:
        """The index's record of one file; None when Syncthing has not indexed it."""
        try:
            resp = self._request(
                "GET",
                "/rest/db/file",
                params={"folder": folder, "file": name},
                on_missing=lambda _text: _NotIndexed(""),
            )
        except _NotIndexed:
            # The endpoint answers 404 for an unknown folder too: tell them
            # apart (once per session, so a run's thousands of calls stay one each).
            if folder not in self._folders_seen:
                self.folder(folder)
            return None
        raw = self._json(resp)
        return DbFile(
            local=_file_version(raw.get("local") or {}),
            global_=_file_version(raw.get("global") or {}),
            availability=tuple(
                Holder(device_id=str(a["id"]), from_temporary=bool(a.get("fromTemporary")))
                for a in raw.get("availability") or ()
            ),
        )

    def ignores(self, folder: str) -> list[str]:
        """The folder's ignore patterns as Syncthing read them
        (``GET /rest/db/ignores``: its ``ignore`` lines, includes not
        expanded); ProviderError when Syncthing could not read them."""
        raw = self._json(
            self._request(
                "GET",
                "/rest/db/ignores",
                params={"folder": folder},
                on_missing=self._unknown_folder(folder),
            )
        )
        if raw.get("error"):
            raise ProviderError(
                f"Syncthing cannot read the ignore patterns of folder {folder!r}: {raw['error']}",
                provider=PROVIDER,
            )
        return [str(x) for x in raw.get("ignore") or ()]

    def names_in(self, folder: str, parent: str) -> list[str]:
        """The names the index holds directly in folder ``parent`` ("" for
        the root), files and folders, as the phone may hold them; deleted
        ones are not among them (``file`` still knows those)."""
        params = {"folder": folder, "levels": "0"}
        if parent:
            params["prefix"] = parent
        raw = self._json(
            self._request(
                "GET", "/rest/db/browse", params=params, on_missing=self._unknown_folder(folder)
            )
        )
        if isinstance(raw, dict):  # the older shape: {name: {...} or [mtime, size]}
            return [str(name) for name in raw]
        return [str(entry.get("name", "")) for entry in raw or () if isinstance(entry, dict)]

    def folder_state(self, folder: str) -> str:
        """This machine's state of the folder (idle, scanning, syncing, error…),
        with its error when there is one. The phone's state is not visible here."""
        raw = self._json(
            self._request(
                "GET",
                "/rest/db/status",
                params={"folder": folder},
                on_missing=self._unknown_folder(folder),
            )
        )
        state = str(raw.get("state", ""))
        error = str(raw.get("error", "") or "")
        return f"{state}: {error}" if error else state

    def completion(self, folder: str, device: str) -> Completion:
        raw = self._json(
            self._request(
                "GET",
                "/rest/db/completion",
                params={"folder": folder, "device": device},
                on_missing=self._unknown_folder(folder),
            )
        )
        return Completion(
            completion=float(raw.get("completion", 0.0)),
            need_items=int(raw.get("needItems", 0)),
            need_bytes=int(raw.get("needBytes", 0)),
            need_deletes=int(raw.get("needDeletes", 0)),
            global_items=int(raw.get("globalItems", 0)),
        )


#: The longest error text of Syncthing's repeated in a message: its own
#: (``loading ignores: parse error: failed to load include file …: open
#: /a/long/path: no such file or directory``) fit whole; a page of HTML
#: from something else at the URL does not.
MAX_SAID = 600


def _said(text: str) -> str:
    """Syncthing's error text on one line, whole up to ``MAX_SAID``
    characters, else cut at a word's end and marked so."""
    one = " ".join(text.split())
    if len(one) <= MAX_SAID:
        return one
    cut = one[:MAX_SAID].rsplit(" ", 1)[0]
    return f"{cut} …"


class _NotIndexed(ProviderError):
    """Internal: /rest/db/file answered 404 for a folder that exists."""
