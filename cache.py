"""``python -m theon.cache``: where the compiled C kernels are cached, what is there, clearing it.

    python -m theon.cache                       the cache folder (config.compiledir)
    python -m theon.cache list                  entries with sizes and ages, and the total
    python -m theon.cache clear                 remove every entry
    python -m theon.cache clear --older-than 7  remove the entries unused for 7 days

The folder follows ``THEON_FLAGS=compiledir=...`` (or ``base_compiledir=...``). Temporary items
younger than an hour may be compiles in progress and are left; so is anything not theon's.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .backends import ccompiler


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _age(seconds: float) -> str:
    for unit, span in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= span:
            return f"{seconds / span:.1f} {unit}"
    return f"{seconds:.0f} s"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _list(out) -> None:
    items = ccompiler.entries()
    found = [e for e in items if e.kind == "entry"]
    print(f"kernel cache: {ccompiler.cache_dir()}", file=out)
    if found:
        print(f"  {'key':<12}  {'size':>10}  {'last used':>10}  name", file=out)
        for e in found:
            label = e.name if e.ok else f"{e.name} (unreadable meta.json: rebuilt when used)"
            print(f"  {e.path.name[:12]}  {_size(e.size):>10}  {_age(e.age) + ' ago':>10}  "
                  f"{label}", file=out)
    total = sum(e.size for e in found)
    print(f"{_count(len(found), 'entry', 'entries')}, {_size(total)} in all", file=out)
    for kind, note in (("probes", "the compiler's version and libraries found, remembered"),
                       ("temporary", "a compile in progress or left by a killed process"),
                       ("other", "not theon's: left alone")):
        some = [e for e in items if e.kind == kind]
        if some:
            print(f"{_count(len(some), 'other item', 'other items')} ({note}), "
                  f"{_size(sum(e.size for e in some))}", file=out)


def _clear(days: float | None, out) -> None:
    removed = ccompiler.clear(days)
    gone = [e for e in removed if e.kind == "entry"]
    which = "" if days is None else f" unused for {days:g} day{'' if days == 1 else 's'}"
    print(f"removed {_count(len(gone), 'entry', 'entries')}{which} "
          f"({_size(sum(e.size for e in gone))}) from {ccompiler.cache_dir()}", file=out)
    items = ccompiler.entries()
    left = [e for e in items if e.kind == "entry"]
    if left:
        print(f"kept {_count(len(left), 'entry', 'entries')} "
              f"({_size(sum(e.size for e in left))})", file=out)
    young = [e for e in items if e.kind == "temporary"]
    if young:
        print(f"kept {_count(len(young), 'temporary item', 'temporary items')} younger than "
              f"an hour (compiles in progress, perhaps)", file=out)


def main(argv: Sequence[str] | None = None, out=None) -> int:
    """The command line; returns the exit status."""
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="python -m theon.cache",
                                     description="theon's cache of compiled C kernels")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("location", help="print the cache folder (the default)")
    sub.add_parser("list", help="entries with their sizes and ages, and the total")
    clear = sub.add_parser("clear", help="remove entries")
    clear.add_argument("--older-than", type=float, metavar="DAYS", default=None,
                       help="only the entries unused for this many days")
    args = parser.parse_args(argv)
    if args.command in (None, "location"):
        print(ccompiler.cache_dir(), file=out)
    elif args.command == "list":
        _list(out)
    else:
        if args.older_than is not None and args.older_than < 0:
            parser.error("--older-than takes a number of days >= 0")
        _clear(args.older_than, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
