"""The ``usfast`` command line: info, doctor, bench, demo, process.

Bad input prints a clear message and exits with status 2 (no traceback)."""
from __future__ import annotations

import argparse
import json
import sys

from ._version import __version__

EXAMPLES = {
    "info": "usfast info\n  usfast info --json",
    "doctor": "usfast doctor\n  usfast doctor --backend cpu",
    "bench": "usfast bench\n  usfast bench --size 1024 --backend cpu --frames 20",
    "demo": "usfast demo\n  usfast demo --out my-demo --frames 60 --quiet\n"
             "  usfast demo --look random --seed 3 --out hard-demo",
    "process": ("usfast process scan.dcm -o results/\n"
                "  usfast process clip.mp4 -o results/ --spacing-mm 0.1\n"
                "  usfast process seq.seq.nrrd -o results/ --config pipeline.toml --backend cpu"),
}


def _parser():
    p = argparse.ArgumentParser(
        prog="usfast", description="GPU-accelerated ultrasound processing for needle guidance.",
        epilog="Examples:\n  " + "\n  ".join(v.split("\n")[0] for v in EXAMPLES.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"usfast {__version__}")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    def add(name, help_):
        return sub.add_parser(name, help=help_, description=help_,
                              epilog="Examples:\n  " + EXAMPLES[name],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    s = add("info", "What was compiled in and which backends work here (and why not).")
    s.add_argument("--json", action="store_true", help="print JSON")
    s = add("doctor", "Run every backend present against the reference; non-zero exit on failure.")
    s.add_argument("--backend", action="append", help="check only this backend (repeatable)")
    for extra in ("bench", "demo", "process"):
        try:
            from . import cli_pipeline
        except ImportError:
            continue
        getattr(cli_pipeline, f"add_{extra}")(add)
    return p


def _cmd_info(args):
    from ._info import build_info
    info = build_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"usfast {info['version']} (Python {info['python']}, {info['platform']})")
    print(f"  OpenMP: {'yes' if info['openmp'] else 'no'}, {info['omp_threads']} threads")
    archs = ", ".join(info["cuda_architectures"]) or "-"
    print(f"  CUDA compiled: {'yes' if info['cuda_compiled'] else 'no'} (architectures: {archs})")
    print(f"  kernel sources: {info['kernel_sources']}")
    print("  backends:")
    for name, st in info["backends"].items():
        mark = "yes" if st["available"] else "no "
        print(f"    {name:10s} {mark}  {st['reason']}")
    return 0


def _cmd_doctor(args):
    from . import doctor
    fails = doctor.run(args.backend)
    if fails:
        print(f"usfast doctor: {len(fails)} check(s) failed", file=sys.stderr)
        return 1
    print("usfast doctor: all checks passed")
    return 0


def main(argv=None):
    from ._errors import BackendUnavailable, InputError
    p = _parser()
    args = p.parse_args(argv)
    if args.cmd is None:
        p.print_help()
        return 0
    handlers = {"info": _cmd_info, "doctor": _cmd_doctor}
    try:
        if args.cmd in handlers:
            return handlers[args.cmd](args)
        from . import cli_pipeline
        return getattr(cli_pipeline, f"cmd_{args.cmd}")(args)
    except (InputError, BackendUnavailable, FileNotFoundError, PermissionError,
            IsADirectoryError, NotADirectoryError) as e:
        print(f"usfast {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
