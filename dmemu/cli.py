"""The `dmemu` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from . import __version__
from .dms import SavedSystem
from .dms.errors import ProtocolImportError
from .dms.saved import existing_registry
from .pages import (
    DEFAULT_ROWS,
    MIN_WIDTH,
    elements_data,
    find_page,
    page_data,
    pages_data,
    render_elements,
    render_page,
    render_pages,
)
from .protocol.errors import DmemuError
from .protocol.storage import REGISTRY_FILE


def _list_elements(args: argparse.Namespace) -> int:
    state = Path(args.state)
    records = existing_registry(state).load()
    if not records:
        print(f"{state}: no elements")
        return 0
    width = max(len(record["name"]) for record in records)
    for record in sorted(records, key=lambda r: (r["agent_id"], r["element_id"])):
        ids = f"{record['agent_id']}/{record['element_id']}"
        state = f"saved as {record['state']}"  # as `dmemu show` says it: nothing here runs the element
        print(f"{record['name']:<{width}}  {ids:<9}  {state:<16}  {record['protocol']}")
    return 0


@contextmanager
def _user_protocols(args: argparse.Namespace) -> Iterator[None]:
    """While a state directory is read: a user's own protocols are imported by their saved module
    path, from the current directory (as `python -m` would) and from each --path folder."""
    import_path = sys.path.copy()
    sys.path[:0] = [str(Path(folder).resolve()) for folder in [*args.path, "."]]
    try:
        yield
    except ProtocolImportError as error:
        raise DmemuError(
            f"{args.state} holds elements of protocol {error.protocol!r}, which cannot be imported "
            f"({error.reason}); run dmemu in the folder that holds its module, or give that folder with --path DIR"
        ) from None
    finally:
        sys.path[:] = import_path


def _show(args: argparse.Namespace) -> int:
    """Saved state, read without running anything: the elements, an element's pages, or one page."""
    with _user_protocols(args):
        system = SavedSystem(args.state)
    output: str | dict[str, object]
    if args.element is None:
        output = elements_data(system.elements) if args.json else render_elements(system.elements, width=args.width)
    else:
        element = system.element(args.element)  # by name or AGENT/ELEMENT ids; the error lists them
        for problem in element.problems:
            print(f"dmemu: warning: {problem}", file=sys.stderr)
        if args.page is None:
            output = pages_data(element) if args.json else render_pages(element, width=args.width)
        else:
            page = find_page(element.protocol, args.page)
            if args.json:
                output = page_data(element, page, rows=args.rows)
            else:
                rows = DEFAULT_ROWS if args.rows is None else args.rows
                output = render_page(element, page, rows=rows, width=args.width)
    # Compact JSON: a page may hold a 100,000-row table, and programs (or jq) need no indentation.
    print(json.dumps(output, ensure_ascii=False) if isinstance(output, dict) else output)
    return 0


def _serve(args: argparse.Namespace) -> int:
    """A saved DMS, running (on the wall clock) and served over HTTP until Ctrl-C."""
    from .dms import DataMinerSystem
    from .web.console import announce
    from .web.server import check_access, serve

    check_access(args.host, args.token)  # before the DMS starts its elements for nothing
    if args.system is not None:
        return _serve_system(args)
    if not (Path(args.state) / REGISTRY_FILE).exists():
        raise DmemuError(f"{args.state} holds no DataMiner System ({REGISTRY_FILE} is missing); `dmemu demo --state DIR` makes one")
    with _user_protocols(args):
        dms = DataMinerSystem(args.state)
    try:
        with serve(dms, port=args.port, host=args.host, token=args.token) as server:
            announce(server, f"{args.state} ({len(dms.elements)} elements)")
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                print("stopped", flush=True)
    finally:
        dms.close()
    return 0


def _serve_system(args: argparse.Namespace) -> int:
    """The DMS a system file describes, started with its simulators and served until Ctrl-C."""
    from .system_file import load_system, start_system
    from .web.console import announce

    description = load_system(args.system)  # every mistake in the file is said before anything starts
    with start_system(description) as running, running.serve(args.port, host=args.host, token=args.token) as server:
        announce(server, f"{args.system} ({len(running.dms.elements)} elements)")
        for name, simulator in running.simulators.items():
            print(f"  simulator {name}: {simulator.base_url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped", flush=True)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from .simulators.activity import KINDS, ProblemActivity
    from .simulators.inventory import InventorySpec
    from .simulators.osb_server import OsbService
    from .simulators.server import SES_PATHS, TMF_PATHS, Simulators

    if args.password is not None and not args.user:
        raise DmemuError("--password goes with --user (or give one API's with --credentials API=USER:PASSWORD)")
    credentials = {api: (args.user, args.password or "") for api in ("tmf638", "tmf639", "tmf656", "tmf642")} if args.user else {}
    credentials.update(dict(args.credentials))
    spec = InventorySpec(
        services=args.services,
        carriers=args.carriers,
        resources=args.resources,
        seed=args.seed,
        duplicate_ids=args.duplicate_ids,
        empty_ids=args.empty_ids,
        churn_per_day=args.churn,
        arrivals_per_day=args.arrivals,
        removals_per_day=args.removals,
        start=time.time(),  # the inventory's day 0 is now: changes happen from here on
    )

    def now() -> float:  # simulated time runs `speed` times as fast as the wall clock from day 0
        return spec.start + (time.time() - spec.start) * args.speed

    # Every kind of ServiceNow user activity on the service problems at the same rate an hour.
    activity = ProblemActivity(**dict.fromkeys(KINDS[:-1], args.problem_activity), seed=args.seed) if args.problem_activity else None
    try:
        simulators = Simulators(spec, credentials=credentials, now=now, port=args.port, seed=args.seed, activity=activity)
    except OSError as error:
        raise DmemuError(f"cannot listen on 127.0.0.1:{args.port}: {error.strerror or error}") from None
    osb: OsbService | None = None
    if args.osb:
        try:
            osb = OsbService(port=args.osb_port, clock=now, processing_delay=args.osb_delay, seed=args.seed)
        except OSError as error:
            simulators.stop()
            raise DmemuError(f"cannot listen on 127.0.0.1:{args.osb_port} for the OSB: {error.strerror or error}") from None
    with simulators, osb or contextlib.nullcontext():
        pace = "" if args.speed == 1 else f", simulated time {args.speed:g} times as fast"
        print(f"dmemu simulators on {simulators.base_url} (Ctrl-C stops them{pace})")
        for api, path in TMF_PATHS.items():
            print(f"  {api} (TMF v4): {simulators.base_url}{path}")
        for api, path in SES_PATHS.items():
            print(f"  {api} (SES):    {simulators.base_url}{path}")
        print(f"  faults and request log: {simulators.base_url}/_admin/faults, /_admin/requests", flush=True)
        if osb is not None:
            print(f"  osb (Telenet OSB ticketing): {osb.url}")
            print(f"  its faults, request log and tickets: {osb.base_url}/_admin/faults, /_admin/requests, /_admin/tickets", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoSettings, run_demo

    settings = DemoSettings(
        services=args.services,
        carriers=args.carriers,
        resources=args.resources,
        state=Path(args.state) if args.state else None,
        real_time=args.real_time,
        port=args.port,
        seed=args.seed,
        width=args.width,
        web=args.web,
        web_port=args.web_port,
    )
    try:
        return run_demo(settings)
    except KeyboardInterrupt:
        print("dmemu: interrupted", file=sys.stderr)
        return 130


# Argument types raise ArgumentTypeError with a message of their own: on a ValueError argparse
# would name the function instead ("invalid _port value").


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _port(text: str) -> int:
    value = _whole_number(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (0 to 65535)")
    return value


def _bounded_number(accepts: Callable[[float], bool], refusal: str) -> Callable[[str], float]:
    """An argparse type: a number `accepts` takes (NaN is taken by no comparison), else
    `refusal` formatted with the `text` given and its `value`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not accepts(value):
            raise argparse.ArgumentTypeError(refusal.format(text=text, value=value))
        return value

    return parse


_speed = _bounded_number(lambda value: 0 < value <= 10_000_000, "{text} is not a speed from above 0 to 10,000,000")
_rate = _bounded_number(lambda value: 0.0 <= value <= 100_000, "{value:g} is not a rate from 0 to 100,000 an hour")
_seconds = _bounded_number(lambda value: 0.0 <= value <= 86_400, "{value:g} is not a number of seconds from 0 to 86,400")
_fraction = _bounded_number(lambda value: 0.0 <= value <= 1.0, "{value:g} is not a fraction between 0 and 1")


def _api_credentials(text: str) -> tuple[str, tuple[str, str]]:
    api, _, login = text.partition("=")
    user, colon, password = login.partition(":")
    if api not in ("tmf638", "tmf639", "tmf656", "tmf642") or not colon or not user:
        raise argparse.ArgumentTypeError(f"{text!r}: write API=USER:PASSWORD with API one of tmf638, tmf639, tmf656, tmf642")
    return api, (user, password)


def _rows(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not a number of rows (0 shows all)")
    return value


def _width(text: str) -> int:
    value = _whole_number(text)
    if value < MIN_WIDTH:
        raise argparse.ArgumentTypeError(f"a width of {value} is too narrow; at least {MIN_WIDTH}")
    return value


def _count(text: str) -> int:
    value = _whole_number(text)
    if not 0 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1,000,000")
    return value


class _Parser(argparse.ArgumentParser):
    """Usage mistakes end like every other error here: one line, exit code 2."""

    commands: dict[str, argparse.ArgumentParser] = {}  # set on the top-level parser by build_parser

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> _Parser:
    """The parser; ``parser.commands`` maps each command's name to its own parser."""
    parser = _Parser(prog="dmemu", description="Emulated DataMiner-style elements.")
    parser.add_argument("--version", action="version", version=f"dmemu {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    elements = commands.add_parser("elements", help="list the elements saved in a state directory")
    elements.add_argument("--state", required=True, metavar="DIR", help="the DataMiner System's state directory")
    elements.set_defaults(run=_list_elements)
    show = commands.add_parser(
        "show", help="show saved state without running anything: the elements, an element's pages, or one page"
    )
    show.add_argument("--state", required=True, metavar="DIR", help="the DataMiner System's state directory")
    show.add_argument("element", nargs="?", metavar="ELEMENT", help="an element's name or AGENT/ELEMENT ids")
    show.add_argument("page", nargs="?", metavar="PAGE", help="a page of the element")
    show.add_argument("--json", action="store_true", help="print JSON for programs instead of text")
    show.add_argument(
        "--rows", type=_rows, metavar="N",
        help=f"rows shown per table (default: {DEFAULT_ROWS} in text, all in JSON; 0: all)",
    )  # fmt: skip
    show.add_argument("--width", type=_width, metavar="N", help="text width (default: the terminal's)")
    show.add_argument(
        "--path", action="append", default=[], metavar="DIR",
        help="a folder to import the elements' protocols from (repeatable; the current folder always is)",
    )  # fmt: skip
    show.set_defaults(run=_show)
    demo = commands.add_parser(
        "demo", help="run the simulators and every connector against them, then print each element's pages"
    )
    demo.add_argument("--services", type=_count, default=2000, help="customer-facing services (default: 2000)")
    demo.add_argument("--carriers", type=_count, default=400, help="carriers (default: 400)")
    demo.add_argument("--resources", type=_count, default=1500, help="resources (default: 1500)")
    demo.add_argument("--state", metavar="DIR", help="keep the DataMiner System here (default: a temporary directory)")
    demo.add_argument("--real-time", action="store_true", help="run on the wall clock and keep polling until Ctrl-C")
    demo.add_argument("--port", type=_port, help="the simulators' port (default: a kept state's, else a free one)")
    demo.add_argument("--seed", type=_whole_number, default=1, help="the generated inventory's seed")
    demo.add_argument("--width", type=_width, metavar="N", help="text width (default: the terminal's)")
    demo.add_argument(
        "--web", action="store_true",
        help="then serve the DMS's REST API (with the simulators' faults) on 127.0.0.1 until Ctrl-C; runs on the wall clock",
    )  # fmt: skip
    demo.add_argument("--web-port", type=_port, default=0, help="the API's port with --web (default: a free one)")
    demo.set_defaults(run=_demo)
    serve = commands.add_parser(
        "serve", help="run a saved DataMiner System, or one a system file describes, and serve its REST API until interrupted"
    )
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument("--state", metavar="DIR", help="the DataMiner System's state directory")
    source.add_argument("--system", metavar="FILE", help="a system file (TOML) describing the DMS to start: see the README")
    serve.add_argument("--port", type=_port, default=0, help="port to listen on (default: a free one)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1; another needs a token)")
    serve.add_argument("--token", help="the token every call must carry (default: a random one, printed)")
    serve.add_argument(
        "--path", action="append", default=[], metavar="DIR",
        help="a folder to import the elements' protocols from (repeatable; the current folder always is)",
    )  # fmt: skip
    serve.set_defaults(run=_serve)
    simulate = commands.add_parser("simulate", help="run the TMF638/639/656 simulators on 127.0.0.1 until interrupted")
    simulate.add_argument("--port", type=_port, default=0, help="port to listen on (default: a free one)")
    simulate.add_argument("--services", type=_count, default=200, help="customer-facing services in TMF638 (default: 200)")
    simulate.add_argument("--carriers", type=_count, default=50, help="carriers (@type element) in TMF638 (default: 50)")
    simulate.add_argument("--resources", type=_count, default=300, help="resources in TMF639 (default: 300)")
    simulate.add_argument("--seed", type=_whole_number, default=1, help="the same seed gives the same inventory and faults (default: 1)")
    simulate.add_argument("--user", help="require HTTP basic auth with this user on every API")
    simulate.add_argument("--password", help="the password that goes with --user (default: empty)")
    simulate.add_argument(
        "--credentials", type=_api_credentials, action="append", default=[], metavar="API=USER:PASSWORD",
        help="basic auth for one API (repeatable), e.g. tmf639=inventory:secret",
    )
    simulate.add_argument("--duplicate-ids", type=_count, default=0, help="extra items repeating an existing id")
    simulate.add_argument("--empty-ids", type=_count, default=0, help="extra items with an empty id")
    simulate.add_argument("--churn", type=_fraction, default=0.0, help="fraction of items changed per day")
    simulate.add_argument("--arrivals", type=_fraction, default=0.0, help="fraction of new items per day")
    simulate.add_argument("--removals", type=_fraction, default=0.0, help="fraction of items removed per day")
    simulate.add_argument(
        "--problem-activity", type=_rate, default=0.0, metavar="N",
        help="ServiceNow users act on TMF656 problems, each kind of action N times a simulated hour (default: 0)",
    )
    simulate.add_argument(
        "--speed", type=_speed, default=1.0, help="simulated seconds per real second, e.g. 86400 for a day a second (default: 1)"
    )
    simulate.add_argument("--osb", action="store_true", help="also run the Telenet OSB ticketing service (SOAP over HTTP)")
    simulate.add_argument("--osb-port", type=_port, default=0, help="port of the OSB ticketing service (default: a free one)")
    simulate.add_argument(
        "--osb-delay", type=_seconds, default=0.0, metavar="SECONDS",
        help="simulated seconds the OSB takes to process a create, update or close after its ACK (default: 0)",
    )
    simulate.set_defaults(run=_simulate)
    parser.commands = dict(commands.choices)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's own parser, so that the hint names `dmemu show --help`
        parser.commands.get(args.command, parser).error(f"unrecognized arguments: {' '.join(extra)}")
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
