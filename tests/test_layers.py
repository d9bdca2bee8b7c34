"""Imports point downward only (DESIGN.md), the planner stays pure, and start-up stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lower numbers are lower layers; a module may import only lower layers,
# or modules of its own package at the same layer.
RANKS = {
    "reconciler.errors": 0,
    "reconciler.model": 0,
    "reconciler.layout": 0,
    "reconciler.visible": 0,
    "reconciler.hashing": 0,
    "reconciler.independence": 0,
    "reconciler.links": 2,
    "reconciler.sidecar": 1,
    # below even layer 0: hashing checks them between chunks
    "reconciler.interrupt": -1,
    "reconciler.crashpoint": -1,
    "reconciler.lifeline": -1,
    "reconciler.forkserver_lifeline": 0,
    "reconciler.config": 2,
    "reconciler.metrics": 2,
    "reconciler.schema": 0,
    "reconciler.leftover": 0,
    "reconciler.tree_listing": 0,
    "reconciler.state": 1,
    "reconciler.lock": 1,
    "reconciler.renditions_journal": 1,
    "reconciler.backup": 1,
    "reconciler.logfile": 1,
    "reconciler.media": 1,
    "providers": 2,
    "reconciler.plan": 3,
    "reconciler.connect": 3,
    "reconciler.census": 3,
    "reconciler.history": 4,
    "reconciler.sweep": 4,
    "reconciler.planfile": 3,
    "reconciler.legacy": 3,
    "reconciler.selection": 3,
    "reconciler.observe": 4,
    "reconciler.walk_ahead": 3,
    "reconciler.gate": 4,
    "reconciler.originals": 4,
    "reconciler.encoder_pool": 4,
    "reconciler.rows": 3,
    "reconciler.places": 3,
    "reconciler.disks": 3,
    "reconciler.preflight": 4,
    "reconciler.apply": 5,
    "reconciler.kept_plan": 5,
    "reconciler.render": 6,
    "reconciler.progress": 7,
    "reconciler.report": 7,
    "reconciler.commands": 8,
    "reconciler.cli": 9,
    "reconciler.demo": 10,
}
PURE_PLANNER_MAY_IMPORT = {
    "reconciler.config",
    "reconciler.errors",
    "reconciler.independence",
    "reconciler.layout",
    "reconciler.media",
    "reconciler.sidecar",
    "reconciler.model",
}


def _layer(module: str) -> str:
    for name in sorted(RANKS, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    raise AssertionError(f"{module} is in no layer: add it to RANKS")


def _modules() -> dict[str, Path]:
    found = {}
    for package in ("reconciler", "providers"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(p for p in parts if p != "__init__")
            if name not in ("reconciler", "providers"):  # the bare packages hold nothing
                found[name] = path
    return found


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in out if m.split(".")[0] in ("reconciler", "providers") and "." in m}


def test_imports_point_downward() -> None:
    modules = _modules()
    upward = []
    for name, path in modules.items():
        mine = _layer(name)
        for imported in _imports(path):
            if imported not in modules and imported.rsplit(".", 1)[0] in modules:
                imported = imported.rsplit(".", 1)[0]  # `from x import name`
            if imported not in modules:
                continue
            theirs = _layer(imported)
            if theirs == mine:
                continue
            if RANKS[theirs] >= RANKS[mine]:
                upward.append(f"{name} imports {imported}")
    assert upward == []


def test_the_planner_is_pure() -> None:
    files = sorted((ROOT / "reconciler" / "plan").glob("*.py"))
    assert files  # the planner is a package: every module of it is pure
    for path in files:
        imported = {_layer(m) for m in _imports(path) if m in _modules()} - {"reconciler.plan"}
        assert imported <= PURE_PLANNER_MAY_IMPORT, path
        source = path.read_text()
        for forbidden in ("open(", "datetime.now", "time.time", "sqlite", "os."):
            assert forbidden not in source, (path, forbidden)


def _prints_ok(code: str) -> None:
    """Run ``code`` in a fresh interpreter (what is loaded at start-up is
    the point): it must end well and print ``ok``."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_command_starts_without_numpy_and_the_report_still_gets_it() -> None:
    """Every cron run starts the CLI: numpy (0.15 s, 11 MiB, pulled in by
    sqlite-utils whenever matplotlib installed it) is not loaded by it, and
    importing it afterwards (the report's plots) works as usual."""
    code = (
        "import sys, reconciler.cli, reconciler.state\n"
        "reconciler.state.connection._sqlite_utils()  # as a command that needs it loads it\n"
        "assert 'sqlite_utils' in sys.modules\n"
        "assert 'numpy' not in sys.modules, 'numpy loaded at start-up'\n"
        "import numpy, matplotlib\n"
        "assert numpy.arange(3).sum() == 3\n"
        "print('ok')\n"
    )
    _prints_ok(code)


def test_a_command_starts_without_the_encoders_and_they_load_on_first_use() -> None:
    """Every command validates the configuration and imports the media
    package; Pillow, pillow-heif, ffmpeg's bindings and xml.sax.saxutils
    (which loads urllib.request and http.client) cost a quarter of a start
    and a no-op run uses none of them. They load when first asked for."""
    code = (
        "import sys, reconciler.cli, reconciler.observe, reconciler.apply, reconciler.plan\n"
        "heavy = ('PIL', 'pillow_heif', 'ffmpeg', 'urllib.request', 'xml.sax.saxutils')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, f'loaded at start-up: {loaded}'\n"
        "from reconciler import media\n"
        "assert media.encode_file.__module__ == 'reconciler.media.encode'\n"
        "assert issubclass(media.EncodeTimeout, Exception)\n"
        "assert 'PIL' in sys.modules\n"
        "from reconciler.media import capture_timestamp, read_lineage\n"
        "try:\n"
        "    media.no_such_thing\n"
        "except AttributeError:\n"
        "    print('ok')\n"
    )
    _prints_ok(code)


def test_a_plan_runs_without_loading_the_applier(tmp_path: Path) -> None:
    """A command's module is imported when that command runs: a plan (what
    the drift check runs every night) loads neither the applier nor the
    other commands' modules; an apply in the same process then loads them."""
    from tests.helpers import KEEP_ORIGINALS, make_workspace

    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    code = (
        "import sys, io\n"
        "from reconciler.cli import main\n"
        f"assert main(['-c', {str(ws.config)!r}, 'plan'], stdout=io.StringIO()) == 0\n"
        "unwanted = ('reconciler.apply', 'reconciler.commands.apply', 'reconciler.commands.setup',"
        " 'reconciler.commands.report', 'reconciler.commands.status')\n"
        "loaded = [m for m in unwanted if m in sys.modules]\n"
        "assert not loaded, f'loaded by a plan: {loaded}'\n"
        f"assert main(['-c', {str(ws.config)!r}, 'apply', '--yes'], stdout=io.StringIO()) == 0\n"
        "assert 'reconciler.apply' in sys.modules\n"
        "print('ok')\n"
    )
    _prints_ok(code)


def test_a_no_op_plan_loads_neither_sqlite_utils_nor_package_metadata(tmp_path: Path) -> None:
    """A converged plan (what cron runs every night) reads and writes the
    state DB through the plain connection: sqlite-utils (with click, pluggy
    and dateutil's parser) and importlib.metadata (with email's parser)
    stay unloaded, a tenth of its start. The first plan made the DB, and
    its migrations use sqlite-utils: that one is run in this process."""
    from tests.helpers import KEEP_ORIGINALS, make_workspace

    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    assert ws.run("plan").code == 0
    code = (
        "import sys, io\n"
        "from reconciler.cli import main\n"
        f"assert main(['-c', {str(ws.config)!r}, 'plan'], stdout=io.StringIO()) == 0\n"
        "unwanted = ('sqlite_utils', 'click', 'dateutil', 'importlib.metadata')\n"
        "loaded = [m for m in unwanted if m in sys.modules]\n"
        "assert not loaded, f'loaded by a plan: {loaded}'\n"
        "print('ok')\n"
    )
    _prints_ok(code)
