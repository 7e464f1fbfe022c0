"""Parse documented command lines with each program's own parser, in one process; run nothing.

    python tests/docs_cli.py < commands.json     (a JSON list of argv lists; prints a JSON list of errors)

For tests/test_docs.py. Each argv is one of:
- ``["eval.py", ...]``, ``["scripts/x.py", ...]``, ``["-m", "alexnet.module", ...]``: the program runs
  as ``python ARGV`` would, but argparse's ``parse_args`` stops it once the arguments have parsed
  (``--help`` prints the help and exits 0, as it always does);
- ``["train.py", "--help" | "--cfg" ...]``: Hydra's own flags, run for real (they print and return);
- ``["wandb", "CMD", ...]``: the subcommand exists and takes every ``--option`` given.
The error for each argv is "" when it parsed, else what the program printed or raised.
"""

import argparse
import contextlib
import io
import json
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Parsed(Exception):
    """Raised right after a program's arguments parsed: the program goes no further."""


def stop_after_parsing(parse_args):
    def parse_and_stop(self, args=None, namespace=None):
        parse_args(self, args, namespace)
        raise Parsed

    return parse_and_stop


def run_program(argv: list[str]) -> None:
    sys.argv = list(argv)
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(str(ROOT / argv[0]), run_name="__main__")


def check_wandb(argv: list[str]) -> None:
    from wandb.cli.cli import cli

    name, args = argv[1], argv[2:]
    if name not in cli.commands:
        raise ValueError(f"wandb has no command {name!r}")
    options = {opt for param in cli.commands[name].params for opt in param.opts}
    unknown = [a for a in args if a.startswith("-") and a.split("=")[0] not in options]
    if unknown:
        raise ValueError(f"wandb {name} takes no option {unknown}")


def check(argv: list[str]) -> str:
    out = io.StringIO()
    original = argparse.ArgumentParser.parse_args
    if argv[0] != "train.py":  # Hydra's flags are handled by Hydra itself, which uses argparse too
        argparse.ArgumentParser.parse_args = stop_after_parsing(original)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            if argv[0] == "wandb":
                check_wandb(argv)
                return ""
            else:
                from hydra.core.global_hydra import GlobalHydra

                GlobalHydra.instance().clear()
                run_program(argv)
    except Parsed:
        return ""
    except SystemExit as exit_:
        return "" if exit_.code in (0, None) else f"exit {exit_.code}: {out.getvalue()[-2000:]}"
    except Exception as err:  # noqa: BLE001 - reported with the command that raised it
        return f"{type(err).__name__}: {err}\n{out.getvalue()[-2000:]}"
    finally:
        argparse.ArgumentParser.parse_args = original
    return "" if argv[0] == "train.py" else f"the program ran to its end without parsing arguments:\n{out.getvalue()[-2000:]}"


if __name__ == "__main__":
    print(json.dumps([check(argv) for argv in json.load(sys.stdin)]))
