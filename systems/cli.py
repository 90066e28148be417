"""``ptr``: list, run, inspect, break and benchmark ptr systems.

A user's mistake (unknown system, bad config, nothing running) is one line on stderr and exit code
2; never a traceback. Every command that starts an actor system shuts it down before it returns.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actors.behaviour import node_name
from protocols.errors import ConfigError, PtrError
from systems import catalog, runfile
from systems.spec import parse_overrides, settings_help
from systems.processes import kill_processes, pid_alive, port_holders, port_taken
from systems.runfile import RunInfo, encode_address
from systems.runtime import ActorRuntime, NodeRuntime, cookie_hex, free_port, set_cookie


class _StopFlag:
    """Ctrl-C and SIGTERM ask a command to stop; its loop sees it within a fifth of a second. No
    exception is raised inside Thespian's transport, which would leave it half-way."""

    def __init__(self) -> None:
        self.signal = 0
        signal.signal(signal.SIGINT, self.set)
        signal.signal(signal.SIGTERM, self.set)

    def set(self, signum: int, frame: Any) -> None:
        self.signal = signum

    def __bool__(self) -> bool:
        return bool(self.signal)


EXIT_SYSTEM_GONE = 3
CLEAR_SCREEN = "\x1b[H\x1b[2J"  # cursor home, erase the screen: ``--watch`` redraws in place


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line on stderr and exit code 2, like every other mistake."""

    def error(self, message: str) -> Any:
        self.exit(2, f"ptr: error: {message} (see: {self.prog} --help)\n")


class _RunHelp(argparse.Action):
    """``ptr run SYSTEM --help``: the usual help, then every ``--set`` key of that system."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        parser.print_help()
        name = getattr(namespace, "system", None)
        if name in catalog.systems():
            system = catalog.get(name)
            print(f"\nsettings of {name} (--set KEY=VALUE, or [{name}] in a --config TOML "
                  f"file):")
            print("\n".join(settings_help(system.settings_model)))
        else:
            print("\nptr run SYSTEM --help lists that system's settings; systems: "
                  + ", ".join(sorted(catalog.systems())))
        parser.exit()


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"takes a port 0-65535, got {text!r}")
    return int(text)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("ptr")
    except PackageNotFoundError:
        return "unknown"


def check_not_running(system: Any, settings: Any) -> None:
    """Refuse to start over a previous instance: name what holds what, in one line."""
    for info in runfile.read_all("system"):
        if info.name == system.name:
            owner = f"ptr pid {info.pid}" if info.alive else f"ptr pid {info.pid} gone"
            raise ConfigError(
                f"{system.name} is already running ({owner}, admin port {info.admin_port}, "
                f"{len(info.processes())} actor processes); stop it with: ptr stop {system.name}")
    busy = []
    for setting, port in (system.listen_ports(settings) if system.listen_ports else {}).items():
        for pid, proto, cmd in port_holders(port):
            busy.append(f"port {port} ({setting}) is held by pid {pid} over {proto}: {cmd[:80]}")
            break
        else:
            if port_taken(port, udp="udp" in setting):  # a holder this user cannot see
                busy.append(f"port {port} ({setting}) is in use by a process ptr cannot see")
    if busy:
        raise ConfigError("; ".join(busy) + " (another instance may be running; stop it, or "
                          "choose other ports with --set)")


def _observer(runtime: ActorRuntime, system: Any, settings: Any, host: str, port: int,
              allow_chaos: bool) -> Any:
    """The web observer of a system this process drives; its port is bound (or refused) now."""
    from systems.observer import Observer, ObserverConfig
    hook = system.metrics

    def system_metrics(rt: ActorRuntime) -> Any:
        return hook(rt, settings) if hook is not None else ()

    def node_sid(name: str) -> int:
        return runfile.find_node(name).admin_sid

    config = ObserverConfig(host=host, port=port, allow_chaos=allow_chaos)
    return Observer(runtime, config, system_metrics, node_sid).start()


def cmd_list(args: argparse.Namespace) -> int:
    for name, system in sorted(catalog.systems().items()):
        print(f"{name:14} {system.summary}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    system = catalog.get(args.system)
    overrides = parse_overrides(args.set)
    if args.players is not None:
        overrides["players"] = args.players
    settings = system.settings(args.config, overrides)
    tree = system.tree(settings)
    if args.base == "multiproc":
        check_not_running(system, settings)
    runtime = ActorRuntime(tree, base=args.base, admin_port=args.admin_port, name=system.name)
    stop = _StopFlag()
    simulator = None
    observer = None
    gone: str | None = None
    with runtime:
        if args.observe:
            observer = _observer(runtime, system, settings, args.observe_host, args.observe_port,
                                 args.allow_chaos)
        run_info = None
        if runtime.base == "multiproc":
            run_info = RunInfo(kind="system", name=system.name, admin_port=runtime.admin_port,
                               pid=os.getpid(), admin_sid=min(runtime.session_ids, default=0),
                               node=node_name(), root=encode_address(runtime.root),
                               cookie=cookie_hex(), chaos=args.allow_chaos,
                               observer=observer.url if observer else "")
            run_info.write()
        where = (f" (admin port {runtime.admin_port}, root pid {runtime.root_pid})"
                 if runtime.base == "multiproc" else "")
        print(f"{system.name}: running on {runtime.base}{where}", flush=True)
        for child in runtime.which_children().children:
            print(f"  /{system.name}/{child.child_id:20} {child.actor_class:22} pid {child.pid}",
                  flush=True)
        for line in (system.edges(settings) if system.edges else []):
            print(f"  edge: {line}", flush=True)
        if observer is not None:
            print(f"observer: {observer.url}\nmetrics: {observer.metrics_url}", flush=True)
        try:
            if args.simulate and system.simulator is not None:
                simulator = system.simulator(runtime, settings)
            deadline = time.monotonic() + args.run_for if args.run_for else None
            while not stop and (deadline is None or time.monotonic() < deadline):
                _idle(runtime, deadline, stop, observer)
                gone = runtime.gone()
                if gone is not None:
                    break
                if system.status is not None and not stop:
                    try:
                        line = system.status(runtime, settings)
                    except PtrError as exc:  # a part is restarting, or the whole system went
                        gone = runtime.gone()
                        if gone is not None:
                            break
                        line = f"status unavailable: {exc}"
                    print(f"{system.name}: {line}", flush=True)
            if stop:
                print(f"{system.name}: stopping", flush=True)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the stop itself is not interrupted
            if simulator is not None:
                simulator.stop()
            if observer is not None:
                observer.stop()
            if run_info is not None:
                run_info.remove()
    left = runtime.wait_until_gone()
    if gone is not None:
        gone = " ".join(gone.split())  # one line, whatever the reason's text holds
        print(f"ptr: error: {system.name} is gone: {gone}; stopped, "
              f"{len(left)} actor processes left", file=sys.stderr, flush=True)
        return EXIT_SYSTEM_GONE
    print(f"{system.name}: stopped; {len(left)} actor processes left", flush=True)
    return 0 if not left else 1


def _idle(runtime: ActorRuntime, deadline: float | None, stop: Any = False,
          observer: Any = None) -> None:
    """Let the system run for up to a second (simpleSystemBase only runs while we listen); an
    observer takes its snapshots and runs the page's faults in between, from this thread."""
    until = time.monotonic() + 1.0 if deadline is None else min(deadline, time.monotonic() + 1.0)
    while not stop and (remaining := until - time.monotonic()) > 0:
        runtime.idle(min(remaining, 0.2))
        if observer is not None:
            observer.service()


def cmd_stop(args: argparse.Namespace) -> int:
    """End a running system cleanly: its ``ptr run`` stops the tree in order; a system whose
    ``ptr run`` is gone (or does not stop within ``--timeout``) has its processes killed."""
    info = runfile.find_system(args.system)
    if info.alive:
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + args.timeout
        while pid_alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling another process's exit: there is no event to wait on
    killed = kill_processes(info.processes())
    if pid_alive(info.pid):
        killed += kill_processes([info.pid])
    info.remove()
    print(f"stopped {info.name}" + (f"; killed {len(killed)} processes that did not stop"
                                    if killed else ""), flush=True)
    return 0


def _attach(system_name: str | None) -> tuple[RunInfo, ActorRuntime]:
    info = runfile.find_system(system_name)
    if info.cookie:
        set_cookie(info.cookie)
    return info, ActorRuntime.attach(info.admin_port, info.root_address(), name=info.name)


def cmd_inspect(args: argparse.Namespace) -> int:
    from systems import inspect
    info, runtime = _attach(args.system)
    extra = catalog.systems().get(info.name)
    extra_of = extra.inspect_extra if extra is not None else None
    limit = 10**9 if args.all else 50
    stop = _StopFlag()
    redraw = args.watch and not args.json and sys.stdout.isatty()
    while True:
        views = inspect.live_tree(runtime, limit)
        node_list = inspect.node_views(inspect.nodes(runtime))
        figures = inspect.system_figures(runtime, extra_of)
        if args.json:
            document = inspect.as_json(views, node_list)
            if figures:
                document["system"] = figures
            print(json.dumps(document), flush=True)
        else:
            home = CLEAR_SCREEN if redraw else ""
            print(home + inspect.render(views, node_list), flush=True)
            for label, value in figures.items():
                print(f"{label}: {value}", flush=True)
        if not args.watch:
            return 0
        _idle(runtime, None, stop)
        if stop:
            return 0
        if not redraw and not args.json:
            print("", flush=True)


def cmd_observe(args: argparse.Namespace) -> int:
    """The observer of a running system: the one its ``ptr run --observe`` serves, or one served
    from this process (faults allowed only if that system was started with ``--allow-chaos``)."""
    info, runtime = _attach(args.system)
    if info.observer and args.port is None:
        print(f"observer: {info.observer}", flush=True)
        return 0
    system = catalog.get(info.name)
    observer = _observer(runtime, system, system.settings(), args.host, args.port or 0,
                         info.chaos)
    print(f"observer: {observer.url}\nmetrics: {observer.metrics_url}", flush=True)
    stop = _StopFlag()
    try:
        deadline = time.monotonic() + args.run_for if args.run_for else None
        while not stop and (deadline is None or time.monotonic() < deadline):
            _idle(runtime, deadline, stop, observer)
    finally:
        observer.stop()
    return 0


def cmd_chaos(args: argparse.Namespace) -> int:
    from systems.chaos import Chaos
    _, runtime = _attach(args.system)
    chaos = Chaos(runtime)
    if args.fault == "kill-node":
        node = runfile.find_node(args.target)
        killed = chaos.kill_node(node.admin_sid)
        print(f"killed node {node.name}: {len(killed)} processes")
        return 0
    if args.fault == "crash":
        info = chaos.crash(args.target)
    elif args.fault == "kill":
        info = chaos.kill(args.target)
    elif args.fault == "delay":
        if args.ms is None or args.run_for is None:
            raise PtrError("delay takes PATH MS --for SECONDS")
        info = chaos.delay(args.target, args.ms, args.run_for)
    else:
        if args.run_for is None:
            raise PtrError("drop takes PATH --for SECONDS")
        info = chaos.drop(args.target, args.run_for)
    print(f"{args.fault} {args.target} (pid {info.pid}, node {info.node})")
    return 0


def cmd_node(args: argparse.Namespace) -> int:
    host, _, port = args.join.rpartition(":")
    if not host or not port.isdigit():
        raise PtrError(f"--join takes HOST:PORT, got {args.join!r}")
    caps = parse_overrides(args.capability)
    admin_port = args.admin_port or free_port()
    node = NodeRuntime(args.name or f"node-{admin_port}", (host, int(port)), caps,
                       admin_port=admin_port)
    stop = _StopFlag()
    node.start()
    info = RunInfo(kind="node", name=node.name, admin_port=node.admin_port, pid=os.getpid(),
                   admin_sid=node.admin_sid, node=node.name)
    info.write()
    print(f"node {node.name}: admin port {node.admin_port}, joined {args.join}, "
          f"capabilities {caps}", flush=True)
    try:
        deadline = time.monotonic() + args.run_for if args.run_for else None
        while not stop and (deadline is None or time.monotonic() < deadline):
            node.idle(0.2)
    finally:
        node.shutdown()
        info.remove()
    print(f"node {node.name}: stopped", flush=True)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from systems.bench import BENCHMARKS
    if args.name not in BENCHMARKS:
        raise PtrError(f"unknown benchmark {args.name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    _, run = BENCHMARKS[args.name]
    result = run(**parse_overrides(args.set))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ptr", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ptr {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="the systems ptr can run")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="start a system and keep it running", add_help=False)
    p.add_argument("-h", "--help", action=_RunHelp,
                   help="show this help and, after SYSTEM, every --set key of that system")
    p.add_argument("system")
    p.add_argument("--base", choices=["simple", "multiproc"], default="multiproc")
    p.add_argument("--config", type=Path, help="a TOML file of settings")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting (repeatable)")
    p.add_argument("--for", dest="run_for", type=_positive_seconds, default=None,
                   metavar="SECONDS", help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--simulate", action="store_true", help="also start the load simulator")
    p.add_argument("--players", type=int, default=None, metavar="N",
                   help="how many simulated players (same as --set players=N)")
    p.add_argument("--admin-port", type=int, default=None,
                   help="Thespian admin port (default: a free one)")
    p.add_argument("--observe", action="store_true",
                   help="serve the web observer and /metrics (prints their URLs)")
    p.add_argument("--observe-host", default="127.0.0.1", metavar="HOST",
                   help="where the observer listens (default loopback; elsewhere it needs a token)")
    p.add_argument("--observe-port", type=_port, default=0, metavar="PORT",
                   help="the observer's port (default: a free one)")
    p.add_argument("--allow-chaos", action="store_true",
                   help="let the observer's page inject faults (crash, kill, delay, drop)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("observe", help="the web observer of the running system (prints its URL)")
    p.add_argument("--system", help="which running system (needed when several run)")
    p.add_argument("--host", default="127.0.0.1", help="where to listen (default loopback)")
    p.add_argument("--port", type=_port, default=None,
                   help="serve one from this process on this port (0: a free one)")
    p.add_argument("--for", dest="run_for", type=_positive_seconds, default=None,
                   metavar="SECONDS")
    p.set_defaults(func=cmd_observe)

    p = sub.add_parser("stop", help="stop a running system (cleanly, or by force if it hangs)")
    p.add_argument("system")
    p.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS",
                   help="how long its ptr run may take to stop the tree before it is killed")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("inspect", help="the live supervision tree of the running system")
    p.add_argument("--system", help="which running system (needed when several run)")
    p.add_argument("--json", action="store_true", help="one JSON object per view")
    p.add_argument("--watch", action="store_true", help="redraw the table every second, like top")
    p.add_argument("--all", action="store_true", help="every child, not the first 50 each")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("top", help="the live tree, redrawn every second (ptr inspect --watch)")
    p.add_argument("--system", help="which running system (needed when several run)")
    p.add_argument("--all", action="store_true", help="every child, not the first 50 each")
    p.set_defaults(func=cmd_inspect, watch=True, json=False)

    p = sub.add_parser("chaos", help="inject a fault into the running system")
    p.add_argument("fault", choices=["crash", "kill", "kill-node", "delay", "drop"])
    p.add_argument("target", help="an actor's path (/SYSTEM/child/...) or, for kill-node, a node")
    p.add_argument("ms", nargs="?", type=float, default=None, help="delay: milliseconds per message")
    p.add_argument("--for", dest="run_for", type=_positive_seconds, default=None,
                   metavar="SECONDS")
    p.add_argument("--system", help="which running system (needed when several run)")
    p.set_defaults(func=cmd_chaos)

    p = sub.add_parser("node", help="run a node that joins a system's convention")
    p.add_argument("action", choices=["start"])
    p.add_argument("--join", required=True, metavar="HOST:PORT",
                   help="the admin port of the system to join (ptr run prints it)")
    p.add_argument("--capability", action="append", default=[], metavar="KEY=VALUE",
                   help="a capability children may require, e.g. role=edge (repeatable)")
    p.add_argument("--name", default=None, help="the node's name (default node-ADMINPORT)")
    p.add_argument("--admin-port", type=int, default=None)
    p.add_argument("--for", dest="run_for", type=float, default=None, metavar="SECONDS")
    p.set_defaults(func=cmd_node)

    p = sub.add_parser("bench", help="run a benchmark and print its figures")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a benchmark parameter, e.g. messages=2000")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        if words and not words[0].startswith("-"):
            # ``ptr SYSTEM ...``: a system's own commands (``ptr grid replay``), if it has some
            from systems import catalog
            spec = catalog.systems().get(words[0])
            if spec is not None and spec.command is not None:
                return int(spec.command(words[1:]))
    except PtrError as exc:
        print(f"ptr: error: {exc}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # the reader went away (ptr inspect | head): not an error
        sys.stdout = None
        return 0
    except PtrError as exc:
        print(f"ptr: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
