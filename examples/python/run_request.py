#!/usr/bin/env python3
"""A whole request from Python: a ticket for `_source.changes` files, run by this
machine's lander through every step (PPA, sbuild, image, DEP-8 tests, publishing), its
progress printed as it comes; exit 0 when it completed.

    python3 examples/python/run_request.py /tmp/hello-ci/hello-ci_1.0-1_source.changes

On the embedded services (the data dir, as the CLI); the first run makes the build chroot
and the base image (a few minutes), later runs reuse them. Ctrl-C cancels the request.
"""

import argparse
import sys

import ubuntu_ci


def show(message: dict) -> None:
    if "phase" in message:
        print(f"==> {message['phase']}: {message.get('message', '')}", flush=True)
    elif "current" in message and "total" in message:
        print(f"==> test {message['current']}/{message['total']}", flush=True)
    elif "state" in message:
        print(f"==> {message['state']} {message.get('reason') or ''}".rstrip(), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("changes", nargs="+", help="_source.changes files")
    parser.add_argument("--title", default="a request from Python")
    parser.add_argument("--owner", default="dev@example.com")
    parser.add_argument("--series", help="the series (default: the configured one)")
    args = parser.parse_args()

    ticket = ubuntu_ci.submit(args.title, args.changes, owner=args.owner)
    print(f"ticket {ticket.id}: {ticket.resource_uri}", flush=True)
    request = ubuntu_ci.Lander(args.series).submit(ticket.id)
    try:
        for message in request:
            show(message)
    except KeyboardInterrupt:
        request.cancel()
        print("cancelling", file=sys.stderr)
    outcome = request.outcome()
    print(f"{outcome['state']} at {outcome['step']}")
    return 0 if outcome["state"] == "COMPLETED" else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ubuntu_ci.Error as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
