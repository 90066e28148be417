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
from systems.processes import kill_processes, pid_alive, port_holders
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
    if busy:
        raise ConfigError("; ".join(busy) + " (another instance may be running; stop it, or "
                          "choose other ports with --set)")


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PtrError(f"--set takes KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


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
    gone: str | None = None
    with runtime:
        run_info = None
        if runtime.base == "multiproc":
            run_info = RunInfo(kind="system", name=system.name, admin_port=runtime.admin_port,
                               pid=os.getpid(), admin_sid=min(runtime.session_ids, default=0),
                               node=node_name(), root=encode_address(runtime.root),
                               cookie=cookie_hex())
            run_info.write()
        where = (f" (admin port {runtime.admin_port}, root pid {runtime.root_pid})"
                 if runtime.base == "multiproc" else "")
        print(f"{system.name}: running on {runtime.base}{where}", flush=True)
        for child in runtime.which_children().children:
            print(f"  /{system.name}/{child.child_id:20} {child.actor_class:22} pid {child.pid}",
                  flush=True)
        for line in (system.edges(settings) if system.edges else []):
            print(f"  edge: {line}", flush=True)
        try:
            if args.simulate and system.simulator is not None:
                simulator = system.simulator(runtime, settings)
            deadline = time.monotonic() + args.run_for if args.run_for else None
            while not stop and (deadline is None or time.monotonic() < deadline):
                _idle(runtime, deadline, stop)
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
            if run_info is not None:
                run_info.remove()
    left = runtime.wait_until_gone()
    if gone is not None:
        print(f"ptr: error: {system.name} is gone: {gone}; stopped, "
              f"{len(left)} actor processes left", file=sys.stderr, flush=True)
        return EXIT_SYSTEM_GONE
    print(f"{system.name}: stopped; {len(left)} actor processes left", flush=True)
    return 0 if not left else 1


def _idle(runtime: ActorRuntime, deadline: float | None, stop: Any = False) -> None:
    """Let the system run for up to a second (simpleSystemBase only runs while we listen)."""
    until = time.monotonic() + 1.0 if deadline is None else min(deadline, time.monotonic() + 1.0)
    while not stop and (remaining := until - time.monotonic()) > 0:
        runtime.idle(min(remaining, 0.2))


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
    _, runtime = _attach(args.system)
    limit = 10**9 if args.all else 50
    stop = _StopFlag()
    while True:
        views = inspect.live_tree(runtime, limit)
        node_caps = inspect.nodes(runtime)
        if args.json:
            print(json.dumps(inspect.as_json(views, node_caps)), flush=True)
        else:
            print(inspect.render(views, node_caps), flush=True)
        if not args.watch:
            return 0
        _idle(runtime, None, stop)
        if stop:
            return 0
        print("", flush=True)


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
    parser = argparse.ArgumentParser(prog="ptr", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="the systems ptr can run")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="start a system and keep it running")
    p.add_argument("system")
    p.add_argument("--base", choices=["simple", "multiproc"], default="multiproc")
    p.add_argument("--config", type=Path, help="a TOML file of settings")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting (repeatable)")
    p.add_argument("--for", dest="run_for", type=float, default=None, metavar="SECONDS",
                   help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--simulate", action="store_true", help="also start the load simulator")
    p.add_argument("--players", type=int, default=None, metavar="N",
                   help="how many simulated players (same as --set players=N)")
    p.add_argument("--admin-port", type=int, default=None,
                   help="Thespian admin port (default: a free one)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("stop", help="stop a running system (cleanly, or by force if it hangs)")
    p.add_argument("system")
    p.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS",
                   help="how long its ptr run may take to stop the tree before it is killed")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("inspect", help="the live supervision tree of the running system")
    p.add_argument("--system", help="which running system (needed when several run)")
    p.add_argument("--json", action="store_true", help="one JSON object per view")
    p.add_argument("--watch", action="store_true", help="print the tree every second")
    p.add_argument("--all", action="store_true", help="every child, not the first 50 each")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("chaos", help="inject a fault into the running system")
    p.add_argument("fault", choices=["crash", "kill", "kill-node", "delay", "drop"])
    p.add_argument("target", help="an actor's path (/SYSTEM/child/...) or, for kill-node, a node")
    p.add_argument("ms", nargs="?", type=float, default=None, help="delay: milliseconds per message")
    p.add_argument("--for", dest="run_for", type=float, default=None, metavar="SECONDS")
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
