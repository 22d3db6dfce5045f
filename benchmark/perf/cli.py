"""`peft-bench perf [--quick] [--model M] [--part P ...] [--json FILE] [--out DIR]`."""

from __future__ import annotations

from pathlib import Path

DEFAULT_OUT = "reports/perf"


def cmd_perf(args) -> int:
    from benchmark.perf import evaluation, report, settings, suite

    if args.device != "cpu":
        return _device_perf(args)
    chosen = settings.pick(args.quick, args.model, args.part)
    if set(chosen.parts) - {"control"}:  # the model is loaded: a name that cannot decode fails first
        evaluation.check_model(chosen.model)
    figures = suite.run(chosen)
    paths = report.write(figures, Path(args.out), Path(args.json) if args.json else None)
    print(report.markdown(figures))
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def _device_perf(args) -> int:
    """The GPU figures on a 1B-class LLaMA shape (perf/accelerator.py); saved after each part."""
    from benchmark.errors import UserError
    from benchmark.perf import accelerator, report

    if args.part:
        raise UserError("perf --part: not with --device (the GPU run measures training, evaluation and fp32 identity)")
    if args.model:
        raise UserError("perf --model: not with --device (the GPU figures use the llama-1b shape, random weights)")
    out = Path(args.out)
    json_file = Path(args.json) if args.json else None
    figures = accelerator.run(accelerator.pick(args.device, args.quick),
                              save=lambda fig: report.write_device(fig, out, json_file))
    print(report.device_markdown(figures))
    return 0


def add_parser(subparsers) -> None:
    from benchmark.perf import PARTS

    p = subparsers.add_parser("perf", help="evaluation / training / overhead / control-plane throughput, "
                                           "peft-bench vs the reference protocol")
    p.add_argument("--quick", action="store_true", help="fewer prompts and steps (a few minutes on 2 CPU cores)")
    p.add_argument("--model", default=None, help="causal catalogue model (default tiny-llama; fp32)")
    p.add_argument("--part", action="append", choices=PARTS, default=None,
                   help="measure only this part (repeatable; default all): eval (reference vs ours vs transformers' "
                        "batched generate), train, cotrain (mixed trials solo vs co-trained on one base), "
                        "overhead, control (plan and store)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--device", default="cpu",
                   help="cpu (default: the embedded tiny model, the targets) or cuda (a 1B-class LLaMA shape with "
                        "random weights: bf16 training tokens/s and MFU, evaluation reference vs ours)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"folder for perf.json and perf.md (default {DEFAULT_OUT})")
    p.set_defaults(fn=cmd_perf)
