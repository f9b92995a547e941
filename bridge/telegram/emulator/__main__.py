"""``python -m bridge.telegram.emulator --port N [--host H] [--token T ...]``: the emulator as a server.

``--port 0`` picks a free port; ``--announce`` prints ``{"url": ..., "port": ...}`` as the first line on stdout
once listening (EmulatorProcess reads it).
"""

from __future__ import annotations

import argparse
import json
import sys

from .server import bind_socket, make_server
from .state import EmulatorState


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bridge.telegram.emulator",
        description="Telegram Bot API emulator (Bot API at /bot<token>/<method>, control API at /_emulator/).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument(
        "--token",
        action="append",
        help="accept only this token (repeatable); default: any token of Telegram's format",
    )
    parser.add_argument(
        "--faithful-html",
        action="store_true",
        help="keep a bare '&' in HTML text as Telegram does, instead of rejecting it",
    )
    parser.add_argument("--seed", type=int, help="seed for probabilistic faults")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--announce", action="store_true", help="print the URL as JSON on stdout once bound")
    args = parser.parse_args(argv)

    state = EmulatorState(tokens=args.token, strict_html=not args.faithful_html, seed=args.seed)
    sock = bind_socket(args.host, args.port)
    url = f"http://{args.host}:{sock.getsockname()[1]}"
    print(f"Telegram Bot API emulator: base_url {url}/bot, control {url}/_emulator/", file=sys.stderr)
    if args.announce:
        print(json.dumps({"url": url, "port": sock.getsockname()[1]}), flush=True)
    try:
        make_server(state, log_level=args.log_level).run(sockets=[sock])
    finally:
        state.close()


if __name__ == "__main__":
    main()
