"""The up-to-date record: answering a no-op check without executing the Dreamfile.

ninja is fast because it does not re-run its generator unless the generator's own inputs changed. The
Dreamfile is our generator, so after a check that found every job up to date, dreammake writes
`.dreammake/uptodate.marshal`: for the command's plan options (Dreamfile, targets, `--config`), everything
that check depended on, each with its stat signature (size, mtime_ns, inode):

* every file the evaluation and the plan opened (seen by a Python audit hook): the Dreamfile, its
  includes, chat templates and model configs, and the source of every imported module (the project's
  helpers, and the installed packages whose versions enter code identities); a file they tried to open
  and did not find must still be absent;
* every folder they listed (a file added to a checkpoint or glob'd folder changes its signature);
* every input and output of the plan, the files inside folder targets included;
* every environment variable the evaluation read, with its value;
* the state database's signature (any build, anywhere, changes it), the interpreter and dreammake versions.

The next `dreammake -n`, `-q` or plain build with the same options stats those paths and, when nothing
moved, answers from the record before importing the CLI, the Dreamfile or DuckDB. Anything unexpected
(another option, a command name, `MAKEFLAGS`, a held lock, a missing or changed file) falls back to the
full check, which is always right. What the record cannot see: a Dreamfile that reads the clock, random
numbers or a file through a C extension that bypasses Python's audit hooks.
"""

from __future__ import annotations

import marshal
import os
import sys
from typing import Any

RECORD = os.path.join(".dreammake", "uptodate.marshal")
NO_RECORD = "DREAMMAKE_NO_RECORD"  # set: every check runs in full, and none writes a record
FORMAT = 1
_MAX_ENTRIES = 4
_MODES = {"-n": "dry-run", "--dry-run": "dry-run", "-q": "question", "--question": "question"}
_IGNORED_FLAGS = frozenset({"-k", "--keep-going", "--no-wait"})
_IGNORED_WITH_VALUE = frozenset({"-j", "--jobs"})


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def parse(argv: list[str]) -> tuple[str, bool, tuple[Any, ...]] | None:
    """(mode, quiet, plan key) of a plain build, `-n` or `-q` command line; None for anything else."""
    mode, quiet = "build", False
    dreamfile, targets, config = "Dreamfile", [], []
    i = 0
    while i < len(argv):
        token = argv[i]
        value = argv[i + 1] if i + 1 < len(argv) else None
        if token in _MODES:
            mode = _MODES[token]
        elif token == "--quiet":
            quiet = True
        elif token in _IGNORED_FLAGS:
            pass
        elif token in ("-f", "--file", "--config") or token in _IGNORED_WITH_VALUE:
            if value is None:
                return None
            if token == "--config":
                config.append(value)
            elif token in ("-f", "--file"):
                dreamfile = value
            i += 1
        elif token.startswith("-") or not token:
            return None
        else:
            targets.append(token)
        i += 1
    return mode, quiet, plan_key(dreamfile, targets, config)


def plan_key(dreamfile: str, targets: Any, config: Any) -> tuple[Any, ...]:
    """What decides a plan besides the files: the project folder, the Dreamfile, the targets, `--config`."""
    return (os.getcwd(), os.path.abspath(dreamfile), tuple(targets), tuple(config))


def _versions() -> tuple[str, str, str]:
    from dreammake import __version__

    return (sys.executable, sys.version, __version__)


def quick_check(argv: list[str]) -> int | None:
    """Answer a no-op check from the record: prints what the full check would and returns its exit code,
    or returns None when the full check must run."""
    if "MAKEFLAGS" in os.environ or NO_RECORD in os.environ:
        return None
    parsed = parse(argv)
    if parsed is None:
        return None
    mode, quiet, key = parsed
    try:
        with open(RECORD, "rb") as f:
            record = marshal.loads(f.read())
        if record["format"] != FORMAT or record["versions"] != _versions():
            return None
        entry = record["entries"].get(key)
    except (OSError, EOFError, ValueError, TypeError, KeyError):
        return None
    if entry is None or any(t in record["commands"] for t in key[1]):
        return None
    if os.path.exists(record["db"][0] + ".wal") or _signature(record["db"][0]) != record["db"][1]:
        return None
    if _lock_held():
        return None
    environ = os.environ
    for name, value in entry["env"]:
        if environ.get(name) != value:
            return None
    stat = os.stat
    try:
        for path, sig in zip(entry["paths"], entry["signatures"]):
            st = stat(path)
            if st.st_mtime_ns != sig[1] or st.st_size != sig[0] or st.st_ino != sig[2]:
                return None
    except OSError:
        return None
    exists = os.path.lexists
    if any(exists(path) for path in entry["absent"]):
        return None
    _answer(mode, quiet, entry["up"])
    return 0


def _lock_held() -> bool:
    """Whether another dreammake holds the project (then it may be changing what the record describes)."""
    import fcntl

    try:
        fd = os.open(os.path.join(".dreammake", "lock"), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _answer(mode: str, quiet: bool, up: int) -> None:
    if mode == "dry-run":
        sys.stdout.write(f"0 job(s) to run, {up} up to date\n")
    elif mode == "build" and not quiet:
        text = "everything is up to date"
        if sys.stderr.isatty() and os.environ.get("TERM") != "dumb" and "NO_COLOR" not in os.environ:
            text = f"\x1b[32m{text}\x1b[0m"  # the console's colour for a `done` line
        sys.stderr.write(text + "\n")


class Recorder:
    """Collects what a check depends on while it loads the Dreamfile and plans (see the module docstring)."""

    def __init__(self) -> None:
        self.opened: set[str] = set()
        self.listed: set[str] = set()
        self.env: dict[str, str | None] = {}
        self.active = False

    def __enter__(self) -> Recorder:
        global _active
        _install_hook()
        _active = self
        self.active = True
        self._stopped = False
        environ_type = type(os.environ)
        self._getitem = environ_type.__getitem__
        recorder, original = self, self._getitem

        def getitem(environ: Any, name: str) -> Any:
            try:
                value = original(environ, name)
            except KeyError:
                if recorder.active and environ is os.environ:
                    recorder.env.setdefault(name, None)
                raise
            if recorder.active and environ is os.environ:
                recorder.env.setdefault(name, value)
            return value

        environ_type.__getitem__ = getitem  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop recording (idempotent)."""
        global _active
        if self._stopped:
            return
        self._stopped = True
        self.active = False
        _active = None
        type(os.environ).__getitem__ = self._getitem  # type: ignore[method-assign]

    def save(self, key: tuple[Any, ...], commands: list[str], up: int, plan_paths: list[str]) -> None:
        """Write the record for `key` (call after a check found every job up to date, state closed)."""
        state_dir = os.path.abspath(".dreammake")
        paths: dict[str, None] = {}
        for module in list(sys.modules.values()):
            source = getattr(module, "__file__", None)
            if source:
                paths[source] = None
        for path in [*self.opened, *self.listed]:
            full = os.path.abspath(path)
            if full != state_dir and not full.startswith(state_dir + os.sep):
                paths[path] = None
        for path in plan_paths:
            paths[path] = None
            if os.path.isdir(path):
                for folder, _, files in os.walk(path):
                    paths[folder] = None
                    paths.update(dict.fromkeys(os.path.join(folder, f) for f in files))
        names, signatures, absent = [], [], []
        for path in paths:
            sig = _signature(path)
            if sig is None:  # tried and not found (a bytecode cache, an optional file): must stay absent
                absent.append(path)
            else:
                names.append(path)
                signatures.append(sig)
        db = os.path.join(state_dir, "state.duckdb")
        db_sig = _signature(db)
        if db_sig is None or os.path.exists(db + ".wal"):
            return
        entry = {"up": up, "env": sorted((k, v) for k, v in self.env.items()), "paths": names,
                 "signatures": signatures, "absent": absent}
        try:
            with open(RECORD, "rb") as f:
                record = marshal.loads(f.read())
            if record["format"] != FORMAT or record["versions"] != _versions() or record["db"] != (db, db_sig):
                raise ValueError
        except (OSError, EOFError, ValueError, TypeError, KeyError):
            record = {"format": FORMAT, "versions": _versions(), "db": (db, db_sig), "entries": {}}
        record["commands"] = commands
        entries = record["entries"]
        entries.pop(key, None)
        while len(entries) >= _MAX_ENTRIES:
            entries.pop(next(iter(entries)))
        entries[key] = entry
        tmp = f"{RECORD}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(marshal.dumps(record))
        os.replace(tmp, RECORD)


_active: Recorder | None = None
_hooked = False
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND


def _install_hook() -> None:
    """One audit hook per process (hooks cannot be removed); it records only while a Recorder is active."""
    global _hooked
    if _hooked:
        return
    _hooked = True

    def hook(event: str, args: tuple[Any, ...]) -> None:
        recorder = _active
        if recorder is None:
            return
        if event == "open":
            path, mode, flags = args
            writes = flags & _WRITE_FLAGS if mode is None else any(c in mode for c in "wax+")
            if isinstance(path, str) and not writes:
                recorder.opened.add(path)
        elif event in ("os.listdir", "os.scandir"):
            path = args[0]
            if isinstance(path, str):
                recorder.listed.add(path or ".")

    sys.addaudithook(hook)


