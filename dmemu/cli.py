"""The `dmemu` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .protocol.errors import DmemuError
from .protocol.storage import RegistryStore


def _list_elements(args: argparse.Namespace) -> int:
    state = Path(args.state)
    registry = state / "dms.json"
    if not registry.exists():
        raise DmemuError(f"{state} holds no DataMiner System (no {registry.name})")
    records = RegistryStore(registry).load()
    if not records:
        print(f"{state}: no elements")
        return 0
    width = max(len(record["name"]) for record in records)
    for record in sorted(records, key=lambda r: (r["agent_id"], r["element_id"])):
        ids = f"{record['agent_id']}/{record['element_id']}"
        print(f"{record['name']:<{width}}  {ids:<9}  {record['state']:<8}  {record['protocol']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmemu", description="Emulated DataMiner-style elements.")
    parser.add_argument("--version", action="version", version=f"dmemu {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    elements = commands.add_parser("elements", help="list the elements saved in a state directory")
    elements.add_argument("--state", required=True, metavar="DIR", help="the DataMiner System's state directory")
    elements.set_defaults(run=_list_elements)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except DmemuError as error:
        print(f"dmemu: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
