#!/usr/bin/env python3
"""The seed's submission flow from Python: a ticket, its source package upload and
subticket, each file of a `_source.changes` into the data store, each recorded as an SPU
artifact; then the ticket as it stands.

    python3 examples/python/seed_flow.py /tmp/hello-ci/hello-ci_1.0-1_source.changes

On the embedded services by default (the data dir, as the CLI); `--server URL --token T`
for an `ubuntu-ci serve`. The package: `pip install target/wheels/ubuntu_ci-*.whl` (see
docs/python.md).
"""

import argparse
import re
import sys
from pathlib import Path

from ubuntu_ci import DataStore, Error, TicketSystem


def listed_files(changes: Path) -> list:
    """The files a .changes lists (its Files field), beside it."""
    text = changes.read_text(errors="replace")
    block = re.search(r"^Files:\n((?: .*\n?)+)", text, re.MULTILINE)
    if block is None:
        raise SystemExit(f"{changes}: no Files field")
    return [changes.with_name(line.split()[-1]) for line in block.group(1).splitlines()]


def field(changes: Path, name: str) -> str:
    found = re.search(rf"^{name}: *(.+)$", changes.read_text(errors="replace"), re.MULTILINE)
    if found is None:
        raise SystemExit(f"{changes}: no {name} field")
    return found.group(1).strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("changes", type=Path, help="a _source.changes")
    parser.add_argument("--owner", default="dev@example.com")
    parser.add_argument("--server", help="an ubuntu-ci serve URL (default: embedded)")
    parser.add_argument("--token", help="the server's token")
    args = parser.parse_args()

    tickets = TicketSystem(args.server, token=args.token)
    ticket = tickets.create_ticket(f"{args.changes.name}", owner=args.owner)
    print("ticket", ticket)
    source, version = field(args.changes, "Source"), field(args.changes, "Version")
    spu = tickets.create_source_package_upload(source, version)
    subticket = tickets.create_subticket(spu, ticket, args.owner)
    print("subticket", subticket)

    ticket_id = tickets.ticket(ticket).id
    store = DataStore(
        f"ticket.{ticket_id}", "sources", public=True, backend=args.server, token=args.token
    )
    for path in [args.changes, *listed_files(args.changes)]:
        with open(path, "rb") as f:
            url = store.put_file(path.name, f)
        tickets.create_artifact(path.name, url, "SPU", subticket=subticket)
        print("stored", url)

    detail = tickets.ticket(ticket)
    print(
        f"ticket {detail.id}: {detail.current_workflow_step} {detail.status}, "
        f"{len(detail.artifacts)} artifacts"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Error as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
