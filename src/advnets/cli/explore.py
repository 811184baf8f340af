"""``advnets explore``: the paper live in the browser (advnets.explore): Figure 1 and the 2-D toys trained by
advnets' own Algorithm 1, and a trained model's samples, paths, neighbours and discriminator."""

from __future__ import annotations

import argparse
from pathlib import Path

from advnets.cli.common import add_command
from advnets.errors import AdvnetsError


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {value}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    e = add_command(
        sub,
        "explore",
        help="the paper live in the browser: Figure 1, the 2-D toys, a model's samples",
        description="Start a local web server and print its URL (with a random access token). With no argument it "
        "trains the toys live (Figure 1's 1-D world, the 2-D ring and grid, your own points); --run or --pretrained "
        "adds a model view: samples, nearest training images (Figure 2), paths (Figure 3), z sliders, D's verdict "
        "on a digit you draw. See docs/explore.md.",
        epilog="examples:\n  advnets explore\n  advnets explore --pretrained mnist-paper\n"
        "  advnets explore --run runs/00001-mnist-embedded --port 8765 --no-browser\n",
    )
    model = e.add_mutually_exclusive_group()
    model.add_argument("--run", type=Path, metavar="DIR", help="a run directory (its latest checkpoint)")
    model.add_argument("--pretrained", metavar="NAME", help="a model shipped inside the package (hash checked)")
    e.add_argument(
        "--data",
        default=None,
        metavar="SOURCE",
        help="training images for the nearest-neighbour views (default: a run's own data; for --pretrained, "
        "the embedded MNIST digits)",
    )
    e.add_argument("--data-dir", type=Path, default=None, metavar="DIR", help="where named datasets live")
    e.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    e.add_argument("--port", type=_port, default=8765, help="port (default 8765; 0 picks a free one)")
    e.add_argument("--no-browser", action="store_true", help="print the URL only; do not open a browser")
    e.set_defaults(func=cmd_explore)


def cmd_explore(args: argparse.Namespace) -> int:
    import torch

    from advnets.explore.app import create_app
    from advnets.explore.models import ModelSession
    from advnets.explore.server import bind, make_token, serve, url_of

    torch.set_num_threads(1)  # tiny toy nets: one thread is fastest, and leaves the other cores free
    model = None
    if args.run is not None:
        model = ModelSession.from_run(args.run, args.data, args.data_dir)
    elif args.pretrained is not None:
        model = ModelSession.from_pretrained(args.pretrained, args.data or "embedded", args.data_dir)
    elif args.data is not None:
        raise AdvnetsError("--data goes with --run or --pretrained")
    try:
        sock = bind(args.host, args.port)
    except OSError as e:
        raise AdvnetsError(f"--host {args.host} --port {args.port}: cannot listen there ({e.strerror or e})") from None
    token = make_token()
    port = sock.getsockname()[1]
    serve(create_app(token, model=model, threads=1), sock, url_of(args.host, port, token), not args.no_browser)
    return 0
