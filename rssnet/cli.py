"""``rssnet``: the tools command.  Each subcommand lives in its own module and is
imported only when called, so a tool never pays for (or breaks on) another's imports.

A subcommand module exposes ``main(argv: list[str]) -> int``.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module, one-line help).  Modules are imported lazily.
COMMANDS: dict[str, tuple[str, str]] = {
    "check-config": ("rssnet.config.cli", "validate a config file (exit 78 listing every error)"),
    "listen": ("rssnet.tools.listen", "print results received from a running daemon"),
    "demo": ("rssnet.tools.demo", "run rssnetd on synthetic spectra and print its results"),
    "drivers": ("rssnet.drivers.registry", "list installed drivers and plugin load errors"),
    "emulate": ("rssnet.testing.emulator_cli", "run a reference-protocol spectrometer emulator"),
    "synth": ("rssnet.training.synth_cli", "write a fixed evaluation set of synthetic mixtures"),
    "train": ("rssnet.training.train", "train an RSSNet model"),
    "evaluate": ("rssnet.analysis.evaluate", "evaluate a model or baseline on an .npz set"),
    "export": ("rssnet.engine.export", "export a model to ONNX"),
    "identify": ("rssnet.tools.identify", "identify separated components live"),
    "plot": ("rssnet.tools.plot", "render a result as a PNG"),
    "keys": ("rssnet.tools.keys", "generate CURVE key pairs"),
}


# Modules of the "torch" extra: a command that needs one says which extra to install.
TORCH_EXTRA_MODULES = frozenset({"torch", "onnx", "onnxscript"})
EX_UNAVAILABLE = 69


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: rssnet <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help"}:
        sys.stdout.write(_usage() + "\n")
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name == "--version":
        from rssnet import __version__

        sys.stdout.write(f"rssnet {__version__}\n")
        return 0
    if name not in COMMANDS:
        sys.stderr.write(f"rssnet: unknown command {name!r}\n\n{_usage()}\n")
        return 2
    try:
        module = importlib.import_module(COMMANDS[name][0])
        code: int = module.main(rest)
    except ImportError as err:
        # Training, evaluation and export need torch, an extra since the daemon runs without.
        top = (err.name or "").partition(".")[0]
        if top not in TORCH_EXTRA_MODULES:
            raise
        sys.stderr.write(
            f"rssnet {name}: needs {top}, which is not installed: pip install 'rssnet[torch]'\n"
        )
        return EX_UNAVAILABLE
    return code


if __name__ == "__main__":
    raise SystemExit(main())
