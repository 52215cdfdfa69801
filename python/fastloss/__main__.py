"""The `fastloss` command line: `python -m fastloss bench [options]` (also installed as `fastloss bench`)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastloss", description="fastloss command line tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench_parser = sub.add_parser(
        "bench",
        help="time fastloss against NumPy (and JAX / PyTorch when installed) on built-in workloads",
        description="Times fastloss against NumPy written as users write it (and JAX / PyTorch when "
        "installed) on built-in workloads, interleaved in one process; prints a Markdown table of "
        "medians and ratios, with progress on stderr.",
    )
    from . import bench

    bench.add_arguments(bench_parser)
    args = parser.parse_args(argv)
    if args.command == "bench":
        return bench.run(args)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
