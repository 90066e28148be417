"""``ptr``: list, run, inspect, break and benchmark ptr systems.

A user's mistake (unknown system, bad config, nothing running) is one line on stderr and exit code
2; never a traceback. Every command that starts an actor system shuts it down before it returns.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from protocols.errors import PtrError
from systems import catalog
from systems.runtime import ActorRuntime


class _Stop(Exception):
    """SIGTERM arrived: stop as on Ctrl-C."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Stop()


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
    settings = system.settings(args.config, parse_overrides(args.set))
    tree = system.tree(settings)
    runtime = ActorRuntime(tree, base=args.base, admin_port=args.admin_port, name=system.name)
    signal.signal(signal.SIGTERM, _on_sigterm)
    simulator = None
    with runtime:
        print(f"{system.name}: running on {runtime.base} "
              f"{'(admin port %d)' % runtime.admin_port if runtime.base == 'multiproc' else ''}",
              flush=True)
        for child in runtime.which_children().children:
            print(f"  /{system.name}/{child.child_id:20} {child.actor_class:22} pid {child.pid}",
                  flush=True)
        for line in (system.edges(settings) if system.edges else []):
            print(f"  edge: {line}", flush=True)
        try:
            if args.simulate and system.simulator is not None:
                simulator = system.simulator(runtime, settings)
            deadline = time.monotonic() + args.run_for if args.run_for else None
            while deadline is None or time.monotonic() < deadline:
                _idle(runtime, deadline)
                if system.status is not None:
                    print(f"{system.name}: {system.status(runtime, settings)}", flush=True)
        except (KeyboardInterrupt, _Stop):
            print(f"{system.name}: stopping", flush=True)
        finally:
            if simulator is not None:
                simulator.stop()
    left = runtime.wait_until_gone()
    print(f"{system.name}: stopped; {len(left)} actor processes left", flush=True)
    return 0 if not left else 1


def _idle(runtime: ActorRuntime, deadline: float | None) -> None:
    """Let the system run for up to a second (simpleSystemBase only runs while we listen)."""
    until = time.monotonic() + 1.0 if deadline is None else min(deadline, time.monotonic() + 1.0)
    while (remaining := until - time.monotonic()) > 0:
        runtime.idle(remaining)


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
    p.add_argument("--admin-port", type=int, default=None,
                   help="Thespian admin port (default: a free one)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("bench", help="run a benchmark and print its figures")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a benchmark parameter, e.g. messages=2000")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PtrError as exc:
        print(f"ptr: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
