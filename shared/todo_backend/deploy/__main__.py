"""The deploy command line, run from the repository root:

python -m todo_backend.deploy [--check]          write (or check) knative/ and dapr-components/
python -m todo_backend.deploy --affected BASE HEAD   the CI matrix: functions a change affects (JSON)
python -m todo_backend.deploy render FILE --owner O --tag T   a manifest with its image filled in
python -m todo_backend.deploy launcher FOLDER    the command an image runs (written at image build)
python -m todo_backend.deploy probe NAME         METHOD PATH STATUS of a function's health check
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from todo_backend.catalog import FUNCTIONS, by_name
from todo_backend.deploy import ci, files

PROG = "python -m todo_backend.deploy"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"render": _cmd_render, "launcher": _cmd_launcher, "probe": _cmd_probe}
    if argv and argv[0] in commands:
        return commands[argv[0]](argv[1:])
    parser = argparse.ArgumentParser(prog=PROG, description="Write or check the generated manifests.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="fail if a committed manifest drifts")
    group.add_argument("--affected", nargs=2, metavar=("BASE", "HEAD"), help="print the CI matrix (JSON)")
    # The checkout to read and write: the working directory (make, CI and the scripts run from the
    # root), never a path derived from where the package is installed.
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root (default: .)")
    args = parser.parse_args(argv)
    if not (args.root / "pyproject.toml").is_file():
        parser.error(f"{args.root.resolve()} is not the repository root (no pyproject.toml)")
    if args.affected:
        paths = ci.changed_paths(*args.affected, repo=args.root)
        fns = list(FUNCTIONS) if paths is None else ci.affected(paths)
        print(json.dumps([ci.matrix_entry(fn) for fn in fns], separators=(",", ":")))
        return 0
    if args.check:
        problems = files.check(args.root)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"run `{PROG}` and commit the result", file=sys.stderr)
        return 1 if problems else 0
    for path in files.write(args.root):
        print(f"wrote {path}")
    return 0


def _cmd_render(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} render")
    parser.add_argument("file", type=Path)
    parser.add_argument("--owner", required=True, help="GHCR owner (lowercase)")
    parser.add_argument("--tag", required=True, help="image tag, e.g. the commit SHA")
    parser.add_argument("--image-of", metavar="NAME", help="use this function's image instead")
    args = parser.parse_args(argv)
    sys.stdout.write(ci.render(args.file.read_text(), args.owner, args.tag, args.image_of))
    return 0


def _cmd_launcher(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} launcher")
    parser.add_argument("folder")
    sys.stdout.write(ci.launcher(parser.parse_args(argv).folder))
    return 0


def _cmd_probe(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} probe")
    parser.add_argument("name")
    try:
        fn = by_name(parser.parse_args(argv).name)
    except KeyError:
        print("no such function in the catalog", file=sys.stderr)
        return 2
    p = ci.probe(fn)
    print(p.method, p.path, p.status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
