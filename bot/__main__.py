"""python -m bot {run,serve,setup,check-settings,agents}

run             set up what is missing, start Rasa, the action server and the gateway, wait for Ctrl-C
serve           start the gateway only (Rasa and the action server run elsewhere)
setup           train the Rasa model and build the index when their inputs changed
check-settings  validate the settings and print them
privacy         export or delete everything about one contact: export REF [--out FILE], delete REF --yes
agents          manage the accounts: add EMAIL --name N --role agent|admin|editor, disable EMAIL,
                enable EMAIL, list (the password of "add" is read from stdin or asked for)
kb              the knowledge base's articles: import PATH [--format F] [--as-author EMAIL] [--publish],
                export --format jsonl|csv|markdown OUT
audit           pip-audit of both Python environments [--advisories DIR] [--strict] (bot/ops/audit.py)
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import time

from knowledge_base.config import PROJECT_ROOT, SettingsError

from .settings import Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(f"error: invalid setting: {exc}", file=sys.stderr)
        sys.exit(2)


def _event_loop():
    """uvloop when it is installed (it is a dependency): the gateway is mostly event-loop work
    (sockets, and a thread hop per SQLite statement), which uvloop does with less CPU."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        import asyncio

        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def cmd_serve(args) -> int:
    from aiohttp import web

    from .app import create_app

    settings = _settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .redact import install

    install()  # no emails, phone or order numbers in the logs
    web.run_app(create_app(settings), host=settings.gateway_host, port=settings.gateway_port,
                access_log=None, print=lambda *_: None, shutdown_timeout=10, loop=_event_loop())
    return 0


def cmd_setup(args) -> int:
    from .ops.stack import ensure_index, ensure_model, ensure_sentiment

    settings = _settings()
    t0 = time.time()
    try:
        _, trained = ensure_model()
        built = ensure_index(settings)
        ensure_sentiment()
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"error: set-up failed: {exc}", file=sys.stderr)
        return 1
    print(f"Set-up done in {time.time() - t0:.1f} s (model {'trained' if trained else 'cached'}, "
          f"index {'built' if built else 'cached'}).")
    return 0


def _prepare_in_child(settings, what: str = "set-up") -> int:
    """Build what is missing of the index and the sentiment model in a forked child; its exit code.
    Checking the index loads the encoders (torch, about 430 MB), which the supervisor, living as long
    as the product, need not keep: it stays at about 70 MB."""
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(target=_prepare, args=(settings, what), name="set-up")
    child.start()
    child.join()
    return child.exitcode or 0


def _prepare(settings, what: str) -> None:
    from .ops.stack import ensure_index, ensure_sentiment

    try:
        ensure_index(settings)
        ensure_sentiment()
    except (RuntimeError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"error: {what} failed: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    sys.stdout.flush()


def cmd_run(args) -> int:
    from .ops.stack import Stack, ensure_model, summary

    settings = _settings()
    t0 = time.time()
    try:
        model, _ = ensure_model()
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"error: set-up failed: {exc}", file=sys.stderr)
        return 1
    if _prepare_in_child(settings) != 0:
        return 1
    stack = Stack(settings, settings.var_dir)
    stack.build_children(model)
    print("Starting the action server, Rasa and the gateway ...", flush=True)
    return _supervise(stack, summary, args.start_timeout, t0)


def _supervise(stack, summary, start_timeout: float, t0: float) -> int:
    """Start the children, print the summary when ready, stop everything on Ctrl-C or a dead child."""
    stopping = {"flag": False}

    def on_signal(signum, _frame):
        stopping["flag"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
        while True:
            try:
                stack.wait_ready(timeout=1.0)
                break
            except TimeoutError:
                if stopping["flag"]:
                    raise KeyboardInterrupt from None
                if time.time() - t0 > start_timeout:
                    raise
        print(summary(stack), flush=True)
        print(f"(ready {time.time() - t0:.1f} s after the start)", flush=True)
        while not stopping["flag"]:
            dead = stack.check_alive()
            if dead is not None and getattr(stack, "restarts", False):  # a cluster: the others carry on
                print(f"warning: {dead.name} stopped (exit {dead.proc.returncode}); restarting it", file=sys.stderr,
                      flush=True)
                dead.start()
            elif dead is not None:
                print(f"error: {dead.name} stopped unexpectedly (exit {dead.proc.returncode}); "
                      f"last lines of {dead.log_path}:\n{dead.tail(2000)}", file=sys.stderr)
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("Stopping ...", flush=True)
        stack.stop()
        print("Stopped.", flush=True)
    return 0


def cmd_cluster(args) -> int:
    """make run-cluster: nginx, several gateways, Rasa and action servers on PostgreSQL and Redis (bot.ops.cluster)."""
    import asyncio

    from .ops.cluster import Cluster, cluster_settings, ensure_databases, summary
    from .ops.stack import ensure_model
    from .store.db import upgrade

    t0 = time.time()
    try:
        settings = cluster_settings()
        created = ensure_databases(settings)
        if created:
            print(f"Created the database(s) {', '.join(created)}", flush=True)
        asyncio.run(upgrade(settings.database_url))
        model, _ = ensure_model()
    except (RuntimeError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"error: cluster set-up failed: {exc}", file=sys.stderr)
        return 1
    if _prepare_in_child(settings, "cluster set-up") != 0:
        return 1
    cluster = Cluster(settings, settings.var_dir, gateways=args.gateways, rasa_servers=args.rasa,
                      action_servers=args.actions)
    try:
        cluster.build_cluster(model)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Starting nginx, {args.actions} action server(s), {args.rasa} Rasa server(s) and {args.gateways} "
          "gateway(s) ...", flush=True)
    return _supervise(cluster, summary, args.start_timeout, t0)


def cmd_check(args) -> int:
    settings = _settings()
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if not f.repr and f.name != "kb":  # secrets (and objects holding them): only whether they are set
            value = "<set>" if value else "<empty>"
        print(f"{f.name} = {value!r}" if f.repr or f.name == "kb" else f"{f.name} = {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.chdir(PROJECT_ROOT)
    ap = argparse.ArgumentParser(prog="python -m bot", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("--start-timeout", type=float, default=600.0)
    p.set_defaults(func=cmd_run)
    sub.add_parser("serve").set_defaults(func=cmd_serve)
    c = sub.add_parser("cluster", help="nginx in front of several gateways, Rasa and action servers (make run-cluster)")
    for name, default in (("--gateways", 2), ("--rasa", 2), ("--actions", 2)):
        c.add_argument(name, type=int, default=default, choices=range(1, 9), metavar="1-8")
    c.add_argument("--start-timeout", type=float, default=900.0)
    c.set_defaults(func=cmd_cluster)
    sub.add_parser("setup").set_defaults(func=cmd_setup)
    sub.add_parser("check-settings").set_defaults(func=cmd_check)
    from .staff.accounts import add_cli

    add_cli(sub)
    from .editor.cli import add_cli as add_kb_cli

    add_kb_cli(sub)
    from .insights.privacy import add_cli as add_privacy_cli

    add_privacy_cli(sub)
    from .ops.audit import add_cli as add_audit_cli

    add_audit_cli(sub)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
