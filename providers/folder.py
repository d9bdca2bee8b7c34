"""The folder source: an import folder (a camera card, an "incoming" directory).

Each file is an item (whatever its type: MPO, DNG, an unknown extension;
only junk such as ``.DS_Store`` or ``Thumbs.db`` is left out), except that
a still and a video sharing a stem in the same folder (IMG_1.HEIC +
IMG_1.MOV) are one Live Photo item. Hashes come from the observer's cached
hasher, so an unchanged card is not re-read.
Capture date: EXIF DateTimeOriginal where the file has one, else its mtime;
none when that is a placeholder (``is_placeholder_date``: an mtime of 0 from
an archive extracted without times, a camera's 1970:01:01 00:00:00).

An item leaves the folder only through ``remove``, which the applier calls
after its removal gate, and which refuses if a file changed since it was
archived (a new photo that reused the name must not be deleted).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import signal
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from providers.base import Hasher, LocalTree
from providers.filesystem import link_no_clobber
from providers.filesystem.files import open_folder
from providers.filesystem.walk import shortened, too_deep_problem, unnamed_problem
from reconciler import crashpoint
from reconciler.errors import InUseError, ProviderError
from reconciler.hashing import copy_file_hashing, open_to_read, sha256_file
from reconciler.layout import extension, is_inside, pairing_stem
from reconciler.media.kinds import STILL_EXTENSIONS, VIDEO_EXTENSIONS, is_archivable
from reconciler.media.metadata import is_placeholder_timestamp
from reconciler.model import MediaFile, SourceItem

#: Values made positionally in this module's loops, once per file and item.
_new = tuple.__new__


class FolderSource:
    kind = "folder"
    remote = False

    def __init__(self, source_id: str, root: Path, *, removable: bool = True) -> None:
        self.id = source_id
        self.root = root
        self.removable = removable
        self.remarks: tuple[tuple[str, str], ...] = ()
        #: What the last listing was of (``_listed_folders``): the root's
        #: identity under "", each folder holding a listed file's under its
        #: path. A file missing at removal is gone only from one of these.
        self._listed: dict[str, tuple[int, ...]] = {}

    @property
    def local_tree(self) -> LocalTree:
        return LocalTree(self.root)

    def list_items(self, hasher: Hasher) -> Iterator[SourceItem]:
        root = _identity_of(self.root)
        if root is None:
            raise ProviderError(f"{self.root} does not exist or is not mounted", provider=self.id)
        self._listed = {}
        odd: list[str] = []
        links: list[str] = []
        try:
            entries = sorted(
                (
                    e
                    for e in hasher.walk(self.local_tree.root, undecodable=odd, links=links)
                    if is_archivable(e.rel)
                ),
                key=itemgetter(1),  # the relative path
            )
        except OSError as e:
            raise ProviderError(f"listing {self.root} failed: {e}", provider=self.id) from e
        # A folder (its path ends in "/") is one too deep to be read
        # (``scan_tree``); a file, one whose name is not UTF-8.
        yield from _too_deep(self.id, self.root, [rel for rel in odd if rel.endswith("/")])
        yield from (_unnamed(self.id, self.root, rel) for rel in odd if is_archivable(rel))
        self.remarks = tuple((f"{self.id}:{rel}", _LINK) for rel in links if is_archivable(rel))
        hashed = hasher.hash_entries(entries, dates=True, tree=os.path.join(self.root, ""))
        # rel -> (mtime_ns, file, capture time): the walk's entries (absolute
        # paths and all) are let go before grouping, as a large card's
        # listing is otherwise held twice at its peak.
        files: dict[str, tuple[int, MediaFile, float | None]] = {}
        folders: set[str] = set()
        for (_, rel, size, mtime_ns, _, _), (sha, captured_at_ts, error) in zip(
            entries, hashed, strict=True
        ):
            problem = f"cannot read {self.root / rel}: {error}" if error else ""
            head, _, name = rel.rpartition("/")
            folders.add(head)
            # (name, size, ref, role, sha256, problem, fingerprint)
            media = _new(  # once per file: a tenth of MediaFile(name=…, …)'s time
                MediaFile, (name, size, rel, "original", sha, problem, "")
            )
            files[rel] = (mtime_ns, media, captured_at_ts)
        del entries, hashed
        self._listed = self._listed_folders(root, folders)
        yield from _group(self.id, files)

    def _listed_folders(
        self, root: tuple[int, ...], folders: set[str]
    ) -> dict[str, tuple[int, ...]]:
        """The identities of the root (``root``, taken before the walk) and
        of ``folders`` and the folders above them, taken now: one look per
        folder, not per file. A card swapped during the listing (the root
        another filesystem's now) is listed again."""
        every = {""}
        for head in folders:
            while head and head not in every:
                every.add(head)
                head = head.rpartition("/")[0]
        listed: dict[str, tuple[int, ...]] = {}
        for rel in every - {""}:
            with contextlib.suppress(OSError):  # gone since: nothing is "gone" from it
                st = os.stat(self.root / rel, follow_symlinks=False)
                listed[rel] = (st.st_dev, st.st_ino)
        if _identity_of(self.root) != root:
            raise ProviderError(
                f"{self.root} was unmounted or swapped while it was listed; run again",
                provider=self.id,
            )
        listed[""] = root
        return listed

    def _path(self, ref: str) -> Path:
        if not is_inside(ref):
            raise ProviderError(f"path {ref!r} escapes {self.root}", provider=self.id)
        return self.root / ref

    def local_path(self, item: SourceItem, file: MediaFile) -> Path | None:
        return self._path(file.ref)

    def fetch(self, item: SourceItem, file: MediaFile, dest: Path) -> str:
        src = self._path(file.ref)
        try:
            sha, size = copy_file_hashing(src, dest)
        except OSError as e:
            raise ProviderError(f"reading {file.ref} failed: {e}", provider=self.id) from e
        if size != file.size:
            raise ProviderError(
                f"{file.ref} changed size while being read", provider=self.id, transient=True
            )
        return sha

    def remove(self, item: SourceItem, proven: Callable[[], object]) -> None:
        """Delete the item's files, each proven now to be what was archived,
        once every file is aside and hashed, and ``proven`` (the gate, which
        reads the copies) passed at that moment.

        Each file is reached from the source's root folder by folder, never
        through a symbolic link (a folder swapped for a link to a target's
        since it was listed would have the target's copy deleted), then
        moved aside (renamed in its own folder, which is atomic) and hashed
        there: what is hashed is what is deleted, whatever lands at its name
        meanwhile (a phone syncing a new photo that reuses the name while a
        Live Photo's video is read). If any file is not what was archived,
        every file goes back to its name (never over a file that took it
        since); a killed run's are put back by the next
        (``reconciler.sweep.restore_aside``), and so are those that could
        not be put back now (``SetAsideError``: a card turned read-only).

        Nothing is removed from a root that is not the folder listed (a
        card unplugged leaves a bare mount point, or another card there),
        and a file missing is "gone already" only from the very folder
        listed: else the source is unavailable now, and nothing is said
        removed."""
        folders: list[int] = []
        aside: list[_Aside] = []
        ref = ""
        try:
            for f in item.files:
                ref = f.ref
                reached = self._reach(ref)
                if reached is None:
                    continue  # its folder is gone from the listed source, and so is the file
                folder, name = reached
                folders.append(folder)
                try:
                    moved = _set_aside(name, folder)
                except FileNotFoundError:
                    self._check_listed(ref.rpartition("/")[0], folder, ref)
                    continue  # gone already: nothing of it to remove
                aside.append((folder, name, moved, ref))
                crashpoint.reached("aside")
                held = open_to_read(moved, dir_fd=folder, follow=False)
                busy = _in_use(held)
                if busy:
                    os.close(held)
                    raise InUseError(f"{f.ref} {busy}; not removed this run", provider=self.id)
                if sha256_file(held) != f.sha256:
                    raise ProviderError(
                        f"{f.ref} changed since it was archived; not removing it", provider=self.id
                    )
            # The copies are read now, after every file was hashed (a long
            # clip takes minutes): what they prove holds at the deletion.
            if aside:
                proven()
            while aside:
                folder, _, moved, _ = aside[0]
                os.unlink(moved, dir_fd=folder)
                del aside[0]  # removed: nothing of it to put back
                _drop_record(moved, folder)
        except BaseException as e:  # a signal too: nothing stays aside
            self._put_back_all(aside, ref, e)
            if isinstance(e, OSError):
                raise ProviderError(f"removing {ref} failed: {e}", provider=self.id) from e
            raise
        finally:
            for folder in folders:
                os.close(folder)

    def _put_back_all(self, aside: list[_Aside], ref: str, e: BaseException) -> None:
        """Every file of ``aside`` back to its name; raise ``SetAsideError``
        (from ``e``) naming where those that could not go back are now."""
        stuck = []
        for folder, name, moved, its_ref in reversed(aside):
            try:
                if _put_back(moved, name, folder):
                    _drop_record(moved, folder)
            except OSError:  # a card turned read-only, pulled: the next run does it
                stuck.append(its_ref[: len(its_ref) - len(name)] + moved)
        if not stuck or not isinstance(e, Exception):
            return
        why = f"removing {ref} failed: {e}"
        where = (
            f"the photo is now {stuck[0]}"
            if len(stuck) == 1
            else f"its files are now {', '.join(reversed(stuck))}"
        )
        raise SetAsideError(f"{why}; {where}: the next run puts it back", provider=self.id) from e

    def _reach(self, ref: str) -> tuple[int, str] | None:
        """A descriptor of the folder holding ``ref``, reached from the root
        one folder at a time without following a symbolic link, and the
        file's name in it; None if a folder on the way is gone from the
        folder listed. Raises ProviderError if the root is not the folder
        listed, or a folder is missing from one that is not."""
        if not is_inside(ref):
            raise ProviderError(f"path {ref!r} escapes {self.root}", provider=self.id)
        *parents, name = ref.split("/")
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise self._unavailable(str(self.root), ref) from e
        try:
            self._check_listed("", fd, ref)
            for i, part in enumerate(parents):
                try:
                    child = open_folder(fd, [part])
                except FileNotFoundError:
                    self._check_listed("/".join(parents[:i]), fd, ref)
                    os.close(fd)
                    return None
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd, name

    def _check_listed(self, rel: str, folder: int, ref: str = "") -> None:
        """Raise ProviderError unless ``folder`` (open) is the folder at
        ``rel`` that the last listing saw ("": the root)."""
        try:
            now = _root_identity(folder) if not rel else _folder_identity(folder)
        except OSError:
            now = None
        if now is None or self._listed.get(rel) != now:
            raise self._unavailable(str(self.root / rel) if rel else str(self.root), ref)

    def _unavailable(self, where: str, ref: str) -> ProviderError:
        return ProviderError(
            f"the source is unavailable now: {where} is not the folder listed this run "
            f"(unplugged, unmounted or swapped?); {ref} not removed",
            provider=self.id,
        )


class SetAsideError(ProviderError):
    """A removal failed and could not put a file back under its name (the
    card turned read-only, or was pulled): the file waits under its name
    aside, which the message gives, and the next run puts it back."""


def _root_identity(root: Path | int) -> tuple[int, ...] | None:
    """The folder at ``root`` (a path or an open descriptor): its device,
    inode and filesystem id (``statvfs``'s f_fsid, a disk's own UUID on
    ext4 and btrfs, where the device number may be a swapped card's too);
    None if it is no folder. Raises OSError."""
    st = os.stat(root)
    if not stat.S_ISDIR(st.st_mode):
        return None
    return st.st_dev, st.st_ino, os.statvfs(root).f_fsid


def _identity_of(root: Path) -> tuple[int, ...] | None:
    """``_root_identity``, None where there is no folder to ask."""
    try:
        return _root_identity(root)
    except OSError:
        return None


def _folder_identity(folder: int) -> tuple[int, ...]:
    st = os.fstat(folder)
    return st.st_dev, st.st_ino


#: A file set aside by ``remove``: its folder (open), its name, its name
#: aside, and its path in the source.
_Aside = tuple[int, str, str, str]


#: Where no lease can be taken on a file (a network filesystem, another
#: user's file), one written to less than this long ago (seconds, by the
#: clock) may still be being written, and is not removed this run.
QUIET_S = 600


def _in_use(held: int) -> str:
    """Why the file open at ``held`` may still be being written, or "".

    A copy under way (cp, scp, a file manager, mv from a card to another
    disk) writes in place under the final name; paused mid-file, its first
    half hashes as what was archived, and removing it loses the photo (the
    writer finishes into a deleted file; mv then deletes the card's). So:
    a write lease, taken and let go at once, is granted only while no other
    program has the file open (Linux ``F_SETLEASE``). Where none can be
    taken (not the file's owner, a network filesystem), the file's last
    write must be ``QUIET_S`` old."""
    try:
        # A break of the lease would be signalled; SIGURG's default is to
        # ignore it (SIGIO's would end the run).
        fcntl.fcntl(held, fcntl.F_SETSIG, signal.SIGURG)
        fcntl.fcntl(held, fcntl.F_SETLEASE, fcntl.F_WRLCK)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EBUSY):
            return "is open in another program (still being written?)"
        # A file written "in the future" may be one a share's server, its
        # clock ahead, is writing now: up to a day ahead is not quiet (a
        # camera's wrong clock, years off, must not keep it for ever).
        age = time.time() - os.fstat(held).st_mtime
        if -86400 < age < QUIET_S:
            return f"was written less than {QUIET_S // 60} minutes ago (still being written?)"
        return ""
    fcntl.fcntl(held, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return ""


#: A file being removed waits under its name plus this and a token, in its
#: own folder: a name no camera or sync tool writes, and one every listing
#: still shows (not hidden), so a file left aside is never lost from sight.
ASIDE_MARK = ".reconcile-removing-"
#: DOTALL: a name may hold any character but "/" and NUL, a newline too.
_ASIDE = re.compile(r"(.+)" + re.escape(ASIDE_MARK) + r"([0-9a-f]{12})", re.DOTALL)
#: A name too long to be carried whole aside (``aside_name``) is written
#: first, in a file of this name and the token in the same folder: hidden,
#: so never listed as a photo of its own.
_RECORD = re.compile(re.escape(ASIDE_MARK) + r"([0-9a-f]{12})")
#: The longest name a record holds (a folder's names are at most 255 bytes).
_NAME_MAX = 255


def aside_name(name: str) -> str:
    """``name`` while it is being removed; a name too long for that loses
    its end, and ``remove`` keeps it whole beside it (``_record``)."""
    token = uuid.uuid4().hex[:12]
    keep = name
    while len(f"{keep}{ASIDE_MARK}{token}".encode(errors="surrogateescape")) > _NAME_MAX:
        keep = keep[:-1]
    return f"{keep}{ASIDE_MARK}{token}"


def original_name(name: str) -> str | None:
    """The name a file left aside had (``aside_name``), or None: for a name
    that was too long, its start (``restore`` reads the whole one)."""
    found = _ASIDE.fullmatch(name)
    return found.group(1) if found else None


def _record(moved: str) -> str:
    """The name of the file that holds the whole name of the file set aside
    as ``moved``."""
    return ASIDE_MARK + moved[-12:]


def _set_aside(name: str, folder: int) -> str:
    """Rename ``name`` aside in ``folder``; return its name aside. A name
    too long to be carried whole is first written down beside it, durably:
    a run killed at any point leaves the file under its name, or aside with
    its whole name written (a record left alone is dropped by ``restore``)."""
    moved = aside_name(name)
    whole = original_name(moved) == name
    if not whole:
        _write_record(_record(moved), name, folder)
    try:
        os.rename(name, moved, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        if not whole:
            _drop_record(moved, folder)
        raise
    return moved


def _write_record(record: str, name: str, folder: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(record, flags, 0o644, dir_fd=folder)
    try:
        os.write(fd, name.encode(errors="surrogateescape"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(record, dir_fd=folder)
        raise
    os.close(fd)
    with contextlib.suppress(OSError):  # some filesystems (SMB) refuse it on folders
        os.fsync(folder)


def _drop_record(moved: str, folder: int) -> None:
    """Remove the record of ``moved``'s whole name, if it has one."""
    with contextlib.suppress(OSError):
        os.unlink(_record(moved), dir_fd=folder)


def _whole_name(moved: str, folder: int) -> str | None:
    """The name the file aside as ``moved`` had: from its record if it has
    one that fits it (the start its name aside carries), else that start."""
    start = original_name(moved)
    if start is None:
        return None
    try:
        fd = os.open(_record(moved), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
    except OSError:
        return start
    try:
        whole = os.read(fd, _NAME_MAX + 1).decode(errors="surrogateescape")
    except OSError:
        return start
    finally:
        os.close(fd)
    if (
        whole.startswith(start)
        and "/" not in whole
        and "\0" not in whole
        and len(whole.encode(errors="surrogateescape")) <= _NAME_MAX
    ):
        return whole
    return start


class Restored(NamedTuple):
    """What ``restore`` did in a folder: the names put back, and whether
    any file aside there could not be put back now (not a name taken)."""

    back: list[str]
    stuck: bool


def restore(folder_path: Path, names: list[str]) -> Restored:
    """Put back the files a removal left aside among ``names`` (the files of
    the folder at ``folder_path``): each to its whole name, unless another
    file took it since (then it stays aside, a name every listing shows).
    Records of whole names whose file is gone (removed, or the run killed
    before its rename) are dropped."""
    try:
        folder = os.open(folder_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return Restored([], stuck=any(original_name(n) for n in names))
    back: list[str] = []
    stuck = False
    try:
        tokens = set()
        for moved in names:
            name = _whole_name(moved, folder)
            if name is None:
                continue
            tokens.add(moved[-12:])
            try:
                if _put_back(moved, name, folder):
                    back.append(name)
                    _drop_record(moved, folder)
            except OSError:  # a card still read-only: the next run tries again
                stuck = True
        for record in names:
            found = _RECORD.fullmatch(record)
            if found and found.group(1) not in tokens:
                with contextlib.suppress(OSError):
                    os.unlink(record, dir_fd=folder)
    finally:
        os.close(folder)
    return Restored(back, stuck)


def _put_back(moved: str, name: str, folder: int) -> bool:
    """``moved`` back to ``name`` in ``folder``: True once back; False if
    another file took the name (then it stays aside, a name every listing
    shows). Raises OSError if it cannot be moved now (a read-only card)."""
    try:
        link_no_clobber(moved, name, dir_fd=folder)
    except FileExistsError:
        if not _same_file(moved, name, folder):
            return False  # the name is another file's: nothing is lost
    except FileNotFoundError:
        return False  # not aside any more (put back, or removed, by someone else)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(moved, dir_fd=folder)  # a hard link was made: drop the aside name
    return True


def _same_file(a: str, b: str, folder: int) -> bool:
    """``a`` and ``b`` are one file (a put back killed between its link and
    the unlink of the name aside left both)."""
    try:
        sa = os.stat(a, dir_fd=folder, follow_symlinks=False)
        sb = os.stat(b, dir_fd=folder, follow_symlinks=False)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _group(
    source_id: str,
    files: dict[str, tuple[int, MediaFile, float | None]],
) -> Iterator[SourceItem]:
    """Pair a still with a same-stem video (Live Photos; ``pairing_stem``, as
    the library pairs them); everything else alone."""
    # Once per file: most stems are one file's, so the first file of each
    # stem is kept alone and only a stem met again gets a list.
    first: dict[str, str] = {}
    shared: dict[str, list[str]] = {}
    for rel in files:
        stem = pairing_stem(rel)
        if stem not in first:
            first[stem] = rel
        elif stem in shared:
            shared[stem].append(rel)
        else:
            shared[stem] = [first[stem], rel]
    for stem, rel in first.items():
        members = shared.get(stem)
        if members is None:
            yield _item(source_id, files[rel], None)
            continue
        pair = _live_pair(members)
        if pair is not None:
            still, video = pair
            yield _item(source_id, files[still], files[video][1])
        for rel in members:
            if pair is None or rel not in pair:
                yield _item(source_id, files[rel], None)


# The still a Live Photo's video belongs with when a stem has two (an export
# of the original HEIC and a JPEG made from it): the phone's own first. Of
# two alike (IMG_1.JPG and IMG_1.jpeg), the first by name.
_LIVE_STILL_RANK = {".heic": 0, ".heif": 0, ".jpg": 1, ".jpeg": 1}
#: The rank of a still no phone writes beside its Live Photo's video.
_OTHER_STILL = max(_LIVE_STILL_RANK.values()) + 1


def _live_pair(members: list[str]) -> tuple[str, str] | None:
    """The still and the video of a stem's files that are one Live Photo, or None.

    A Live Photo is one video and a still; files beside them that are no
    photo or video (an edited Live Photo's ``.AAE``, an ``.XMP`` sidecar) do
    not unpair them and stay items of their own. With two stills the video
    goes with the phone's (the HEIC, else the first JPEG by name; ``members``
    are in name order). Two videos, or two stills no phone writes (a DNG
    and a TIFF), are ambiguous: all stay alone, and the planner keeps such
    a video as it is all the same (a still of its name goes beside it)."""
    stills = [rel for rel in members if extension(rel).lower() in STILL_EXTENSIONS]
    videos = [rel for rel in members if extension(rel).lower() in VIDEO_EXTENSIONS]
    if len(videos) != 1 or not 1 <= len(stills) <= 2:
        return None
    ranked = sorted(stills, key=_rank)  # stable: of two alike, the first by name
    if len(ranked) == 2 and _rank(ranked[0]) == _rank(ranked[1]) == _OTHER_STILL:
        return None  # two stills alike (a DNG and a TIFF): which one is unknown
    return ranked[0], videos[0]


def _rank(rel: str) -> int:
    return _LIVE_STILL_RANK.get(extension(rel).lower(), _OTHER_STILL)


def _item(
    source_id: str,
    first: tuple[int, MediaFile, float | None],
    live_video: MediaFile | None,
) -> SourceItem:
    mtime_ns, media, ts = first
    members = (media,) if live_video is None else (media, _as_live_video(live_video))
    # Tested here, not only where the EXIF is read: the mtime too, and a
    # capture time cached by an older version, which took 1970 as a date.
    when = ts if ts is not None and not is_placeholder_timestamp(ts) else mtime_ns / 1e9
    captured = None if is_placeholder_timestamp(when) else datetime.fromtimestamp(when, UTC)
    # (source_id, key, files, captured_at, version, metadata), once per item
    return _new(SourceItem, (source_id, media.ref, members, captured, "", None))


_LINK = (
    "a symbolic link: not archived (nothing is read through links); copy the file "
    "itself here, or add the folder it points to as a source"
)


def _unnamed(source_id: str, root: Path, rel: str) -> SourceItem:
    """A file whose name is not UTF-8, as an item that cannot be read: it
    stays where it is, the run says which file and what to do, and a rename
    makes it an item like any other."""
    problem = unnamed_problem(root, rel)
    name = rel.rpartition("/")[2]
    media = MediaFile(name=name, size=0, ref=rel, problem=problem)
    return SourceItem(source_id=source_id, key=rel, files=(media,), captured_at=None)


def _too_deep(source_id: str, root: Path, folders: list[str]) -> Iterator[SourceItem]:
    """Each folder whose paths are too long to be read (``scan_tree``), as an
    item that cannot be read, keyed and named by its path shortened (a deep
    one's is thousands of characters): it stays where it is, the run says
    where and what to do, and once moved up it is archived like any other.
    Folders whose paths shorten alike are one item."""
    items: dict[str, list[MediaFile]] = {}
    for rel in folders:
        short = shortened(rel)
        problem = too_deep_problem(root, short)
        items.setdefault(short, []).append(MediaFile(name=short, size=0, ref=rel, problem=problem))
    for short, files in items.items():
        yield SourceItem(source_id=source_id, key=short, files=tuple(files), captured_at=None)


def _as_live_video(f: MediaFile) -> MediaFile:
    return f._replace(role="live_video")
