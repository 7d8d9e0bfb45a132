"""The ``molvae`` command: a thin layer over the Python API.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int``. Heavy imports (torch, RDKit) happen inside
``func`` so that ``molvae --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from molvae.errors import MolVAEError

# Module order in `molvae --help`; modules found in this package but not listed here come after.
COMMAND_ORDER = ["data", "train", "generate", "evaluate", "report", "optimize", "likelihood"]


def _command_modules() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    return [n for n in COMMAND_ORDER if n in found] + sorted(found - set(COMMAND_ORDER))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="molvae",
        description="Train a SELFIES VAE on SMILES, sample and evaluate molecules, optimize in latent space.",
    )
    parser.add_argument("--version", action="version", version=f"molvae {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _command_modules():
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("molvae")
    except PackageNotFoundError:
        return "unknown"


def _os_message(exc: OSError) -> str:
    """``PATH: Permission denied`` (lower-cased reason), or the error's own text when it names no file."""
    reason = (exc.strerror or str(exc) or type(exc).__name__)
    reason = reason[:1].lower() + reason[1:]
    return f"{exc.filename}: {reason}" if exc.filename else reason


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line on stderr and return a non-zero code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MolVAEError as exc:
        print(f"molvae {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        print(f"molvae {args.command}: error: file not found: {exc.filename or exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # permission denied, is a directory, disk full: the system's words, one line
        print(f"molvae {args.command}: error: {_os_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"molvae {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
