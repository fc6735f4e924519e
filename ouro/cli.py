"""`ouro <command> [args]`: one entry point; each command lives with the code it drives.

Commands are imported only when invoked, so `ouro --help` does not pay for JAX start-up.
Every command module exposes `main(argv: list[str]) -> int` with its own argparse.
"""

from __future__ import annotations

import importlib
import sys

from ouro.errors import UserError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("ouro.model.cli", "presets: parameter counts, FLOPs per image, a timed forward+backward"),
    "demo": ("ouro.train.demo", "train a small XUT on the embedded digits, sample, score (make demo)"),
    "train": ("ouro.train.cli", "train an XUT with rectified flow (key=value config overrides)"),
    "sample": ("ouro.train.sample_cli", "sample a labelled grid from a checkpoint with CFG"),
    "sweep": ("ouro.train.sweep", "score samples over sampler steps x CFG scale"),
    "vae": ("ouro.vae.cli", "train / evaluate the small KL autoencoder on the embedded shapes images"),
    "fid": ("ouro.eval.fid_cli", "FID of images / a run's samples vs reference statistics (user's Inception weights)"),
    "data": ("ouro.data.cli", "convert PT files / image folders / parquet into sharded latents; check a dataset"),
    "embed": ("ouro.text.cli", "Gemma-3 270M text embeddings (texts file or ImageNet classes)"),
    "run": ("ouro.runs.notebook", "execute a notebook headlessly with papermill into outputs/runs/<name>/"),
    "pod-run": ("ouro.runs.pod", "build (and optionally run) the same papermill run on every TPU-pod host"),
    "fit": ("ouro.analysis.scaling", "fit L(step) = a*step^-b + c to loss CSVs"),
    "plan": ("ouro.plan.compile", "compile the train step for a TPU topology (no TPUs): memory per chip, FLOPs"),
    "export": ("ouro.torch.export", "a run for PyTorch: HDM-format weights or a diffusers pipeline folder"),
    "import-hdm": ("ouro.torch.hdm_cli", "HDM XUDiT weights (.safetensors) -> an ouro run directory"),
    "report": ("ouro.report.detail", "the comparative report of every run under outputs/ (outputs/report/; make report: reports/)"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: ouro [--version] <command> [args] [--debug]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`ouro <command> --help` describes a command. User errors print one line",
              "(`ouro <command>: error: ...`, exit 2); --debug shows the traceback instead."]
    return "\n".join(lines)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return f"ouro {dist_version('ouro')}"
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "ouro (not installed)"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        print(version())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"ouro: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    debug = "--debug" in rest  # user errors normally print one line; --debug keeps the traceback
    rest = [a for a in rest if a != "--debug"]
    module = importlib.import_module(COMMANDS[name][0])
    try:
        if name == "pod-run":
            return int(module.pod_main(rest) or 0)
        return int(module.main(rest) or 0)
    except UserError as e:
        if debug:
            raise
        print(f"ouro {name}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
