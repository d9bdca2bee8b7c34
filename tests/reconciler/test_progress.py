"""Apply's stage progress: plain start/end lines off a terminal (exact), a
live line on one, never a carriage return in a log."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

from reconciler.apply import Outcome
from reconciler.cli import main
from reconciler.model import CopyToTarget, EncodeForTier
from reconciler.progress import StageProgress
from tests.helpers import make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _copies(n: int) -> list[CopyToTarget]:
    return [
        CopyToTarget(
            id=f"copy:nas:{i}",
            subject=f"card:IMG_{i}.JPG",
            reason="no verified copy on nas",
            target_id="nas",
            sha256=None,
            origin=None,
            name=f"IMG_{i}.JPG",
            size=2_000_000,
            captured_at=OLD,
        )
        for i in range(n)
    ]


def _done(a: CopyToTarget | EncodeForTier, status: str = "changed") -> Outcome:
    return Outcome(action_id=a.id, kind=a.kind, subject=a.subject, status=status)


def test_off_a_terminal_one_line_per_stage_start_and_end() -> None:
    lines: list[str] = []
    clock = _Clock()
    p = StageProgress(lines.append, clock=clock)
    copies = _copies(3)
    p.stage("start", "copy-to-target", copies)
    for a, status in zip(copies, ("changed", "changed", "failed"), strict=True):
        clock.t += 1.25
        p.outcome(_done(a, status))
    p.stage("end", "copy-to-target", copies)
    encode = EncodeForTier(
        id="encode:x",
        subject="card:IMG_0.JPG",
        reason="tier old",
        sha256=None,
        origin=None,
        name="IMG_0.JPG",
        tier="old",
        quality=75,
        crf=None,
    )
    p.stage("start", "encode", [encode])
    clock.t += 125
    p.outcome(_done(encode))
    p.stage("end", "encode", [encode])
    assert lines == [
        "stage copy-to-target: started, 3 actions (6.0 MB)",
        "stage copy-to-target: ended in 3.8 s, 3 actions (6.0 MB): 2 changed, 1 failed",
        "stage encode: started, 1 action",  # an encode's bytes are not known before
        "stage encode: ended in 2:05, 1 action: 1 changed",
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_live_line_with_counts_bytes_and_eta() -> None:
    logged: list[str] = []
    tty = _Terminal()
    clock = _Clock()
    p = StageProgress(logged.append, tty, clock=clock)
    copies = _copies(4)
    p.stage("start", "copy-to-target", copies)
    clock.t += 2
    p.outcome(_done(copies[0]))
    clock.t += 2
    p.outcome(_done(copies[1]))
    assert tty.getvalue().split("\r\x1b[K")[1:] == [
        "copy-to-target [--------------------] 0/4 0 B/8.0 MB",
        "copy-to-target [#####---------------] 1/4 2.0 MB/8.0 MB ETA 6.0 s",
        "copy-to-target [##########----------] 2/4 4.0 MB/8.0 MB ETA 4.0 s",
    ]
    for a in copies[2:]:
        p.outcome(_done(a))
    p.stage("end", "copy-to-target", copies)
    end = "stage copy-to-target: ended in 4.0 s, 4 actions (8.0 MB): 4 changed"
    assert tty.getvalue().endswith("\r\x1b[K" + end + "\n")
    assert logged == ["stage copy-to-target: started, 4 actions (8.0 MB)", end]


def test_cron_apply_prints_stage_lines_and_no_progress_bar(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)
    ws.config.write_text(
        ws.config.read_text() + '\n[[policy.tiers]]\nname = "all"\nkeep = "original"\n'
    )
    for i in range(2):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i)
    size = sum(p.stat().st_size for p in ws.incoming.iterdir())
    out, err = io.StringIO(), io.StringIO()
    assert main(["-c", str(ws.config), "apply", "--yes"], stdout=out, stderr=err, now=NOW) == 0
    assert "\r" not in out.getvalue() + err.getvalue()
    stages = [line for line in out.getvalue().splitlines() if line.startswith("stage ")]
    kb, kb2 = f"{size / 1000:.1f} kB", f"{2 * size / 1000:.1f} kB"
    pattern = [
        rf"stage copy-to-library: started, 2 actions \({kb}\)",
        rf"stage copy-to-library: ended in \d+\.\d s, 2 actions \({kb}\): 2 changed",
        rf"stage copy-to-target: started, 4 actions \({kb2}\)",
        rf"stage copy-to-target: ended in \d+\.\d s, 4 actions \({kb2}\): 4 changed",
    ]
    assert len(stages) == len(pattern), stages
    for line, expected in zip(stages, pattern, strict=True):
        assert re.fullmatch(expected, line), (line, expected)


def test_the_live_line_is_redrawn_at_most_ten_times_a_second() -> None:
    tty = _Terminal()
    p = StageProgress(lambda _: None, tty, clock=_Clock())  # time stands still
    copies = _copies(50)
    p.stage("start", "copy-to-target", copies)
    for a in copies:
        p.outcome(_done(a))
    draws = tty.getvalue().split("\r\x1b[K")[1:]
    assert [d.split("] ")[1].split(" ")[0] for d in draws] == ["0/50", "50/50"]
