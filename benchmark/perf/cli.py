"""`peft-bench perf [--quick] [--model M] [--json FILE] [--out DIR]`."""

from __future__ import annotations

from pathlib import Path

DEFAULT_OUT = "reports/perf"


def cmd_perf(args) -> int:
    from benchmark.perf import report, settings, suite

    chosen = settings.pick(args.quick, args.model)
    figures = suite.run(chosen)
    paths = report.write(figures, Path(args.out), Path(args.json) if args.json else None)
    print(report.markdown(figures))
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("perf", help="evaluation / training / overhead / control-plane throughput, "
                                           "peft-bench vs the reference protocol")
    p.add_argument("--quick", action="store_true", help="fewer prompts and steps (a few minutes on 2 CPU cores)")
    p.add_argument("--model", default=None, help="catalogue model (default tiny-llama; fp32)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"folder for perf.json and perf.md (default {DEFAULT_OUT})")
    p.set_defaults(fn=cmd_perf)
