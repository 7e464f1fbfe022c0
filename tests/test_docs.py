"""Every command in README.md and docs/*.md runs here, or the cheap variant named beside it.

The commands are the lines of the fenced blocks marked bash, sh or console (console: the lines
after "$ "). A line ending in a backslash continues; "#" starts a comment; "&&" and ";" separate
commands; a redirection ("> file") is set aside, and so are a leading "nice -n N" and VAR=value.
A placeholder such as <run> stands for a name: it is checked as that name.

How a command is checked, by its program (nothing trains, nothing is written to the checkout):
- python train.py [-m] OVERRIDES, make train ARGS="OVERRIDES": composed in-process with
  alexnet.training.config.compose_train, every job of a -m sweep, and validated: what `--cfg job`
  shows, plus the checks a run makes before any work. With Hydra's own flags (--help, --cfg):
  run as below.
- python eval.py | predict.py | scripts/X.py | -m MODULE ARGS, wandb CMD ARGS: in one subprocess
  (tests/docs_cli.py), each program's own parser takes ARGS and the program stops there.
- torchrun OPTIONS train.py OVERRIDES: torchrun's own parser takes OPTIONS and the script (as
  `python -m torch.distributed.run` does), and OVERRIDES compose and validate as train.py's.
- bash X.sh / X.sh ARGS: the script exists and `bash -n` parses it. make TARGET: `make -n TARGET`.
- Anything else, or a command that must not run here (make train trains for minutes), names its
  variant on a line right above its block, `<!-- test: COMMAND => VARIANT -->`: the variant runs
  for real (python: this interpreter; train.py: a run in this process, as
  conftest.train_in_process runs one, its outputs in a temporary folder).
A command with no rule and no variant fails the test, and so does a variant whose command is gone.
"""

import itertools
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import train_in_process
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob

from alexnet.training.config import compose_train, validate

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = ("bash", "sh", "console")
HYDRA_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "--resolve", "--package", "-p")
VARIANT = re.compile(r"^<!-- test: (.+?) => (.+?) -->$")
PLACEHOLDER = re.compile(r"<([^<>\n]+)>")


@dataclass
class Command:
    where: str  # file:line
    words: list[str]
    variant: list[str] | None = None
    kind: str = ""  # compose | cli | script | make | variant
    args: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.where}: {' '.join(self.words)}"


def blocks(path: Path):
    """(first line number, language, lines, {command: variant}) of every fenced block."""
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        variants, k = {}, i - 1
        while k >= 0 and (declared := VARIANT.match(lines[k])):
            variants[declared[1]] = declared[2]
            k -= 1
        yield i + 2, fence[1], lines[i + 1 : end], variants
        i = end + 1


def split_commands(line: str) -> list[list[str]]:
    words = shlex.split(PLACEHOLDER.sub(lambda m: re.sub(r"\W+", "_", m[1]), line), comments=True)
    commands, current = [], []
    for word in words:
        if word in ("&&", ";", "||"):
            commands.append(current)
            current = []
        else:
            current.append(word)
    commands.append(current)
    out = []
    for words in filter(None, commands):
        if ">" in words:  # output redirection: the file is not an argument
            at = words.index(">")
            words = words[:at] + words[at + 2 :]
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # VAR=value before the program
            words = words[1:]
        if words[:2] == ["nice", "-n"]:
            words = words[3:]
        out.append(words)
    return out


def documented_commands() -> tuple[list[Command], list[str]]:
    """Every command of the docs, and the declared variants that match no command."""
    commands, stale = [], []
    for path in DOCS:
        for first, language, lines, variants in blocks(path):
            if language not in SHELLS:
                continue
            used = set()
            joined, start = "", first
            for n, line in enumerate(lines, first):
                if language == "console":
                    if not line.startswith("$ "):
                        continue
                    line = line[2:]
                if not joined:
                    start = n
                if line.endswith("\\"):
                    joined += line[:-1] + " "
                    continue
                for words in split_commands(joined + line):
                    text = " ".join(words)
                    variant = variants.get(text)
                    if variant:
                        used.add(text)
                    where = f"{path.relative_to(ROOT)}:{start}"
                    commands.append(Command(where, words, shlex.split(variant) if variant else None))
                joined = ""
            stale += [f"{path.relative_to(ROOT)}:{first}: {c}" for c in variants if c not in used]
    return [part for c in commands for part in torchrun_parts(classify(c))], stale


def torchrun_parts(command: Command) -> list[Command]:
    """torchrun OPTIONS train.py OVERRIDES: its launcher options (a cli check) and its job (a compose check)."""
    words = command.words
    if command.kind or words[0] != "torchrun" or "train.py" not in words:
        return [command]
    script = words.index("train.py")
    launcher = Command(command.where, words, kind="cli", args=["-m", "torch.distributed.run", *words[1:]])
    job = Command(command.where, ["python", *words[script:]], kind="compose", args=words[script + 1 :])
    return [launcher, job]


def is_python(word: str) -> bool:
    return word in ("python", "python3") or word.endswith("/bin/python")


def classify(command: Command) -> Command:
    words = command.words
    if command.variant:
        command.kind = "variant"
    elif is_python(words[0]) and words[1:2] == ["train.py"]:
        hydra_flag = any(w in HYDRA_FLAGS for w in words[2:])
        command.kind, command.args = ("cli", words[1:]) if hydra_flag else ("compose", words[2:])
    elif is_python(words[0]) and len(words) > 1 and (words[1] == "-m" or (ROOT / words[1]).is_file()):
        command.kind, command.args = "cli", words[1:]
    elif words[0] == "wandb" and len(words) > 1:
        command.kind, command.args = "cli", words
    elif words[:2] == ["make", "train"] and len(words) == 3 and words[2].startswith("ARGS="):
        command.kind, command.args = "compose", shlex.split(words[2].removeprefix("ARGS="))
    elif words[0] == "make" and len(words) == 2:
        command.kind, command.args = "make", words[1:]
    elif words[0] == "bash" and len(words) == 2 or words[0].endswith(".sh"):
        command.kind, command.args = "script", [words[1] if words[0] == "bash" else words[0]]
    return command


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The jobs of `train.py -m OVERRIDES`: every combination of the swept values (globs over the group's files)."""
    axes = []
    for text, parsed in zip(overrides, OverridesParser.create().parse_overrides(overrides), strict=True):
        if not parsed.is_sweep_override():
            axes.append([text])
            continue
        if isinstance(parsed.value(), Glob):
            names = sorted(p.stem for p in (ROOT / "conf" / parsed.key_or_group).glob("*.yaml"))
            values = parsed.value().filter(names)
        else:
            values = list(parsed.sweep_string_iterator())
        axes.append([f"{parsed.get_key_element()}={value}" for value in values])
    return [list(job) for job in itertools.product(*axes)]


COMMANDS, STALE_VARIANTS = documented_commands()


def of_kind(kind: str) -> list[Command]:
    return [c for c in COMMANDS if c.kind == kind]


def test_every_documented_command_has_a_check():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300, "the README is the manual: at most 300 lines"
    unknown = [str(c) for c in COMMANDS if not c.kind]
    assert not unknown, "no rule and no declared variant (see this file's docstring):\n" + "\n".join(unknown)
    assert not STALE_VARIANTS, "declared variants whose command is not in the block below:\n" + "\n".join(STALE_VARIANTS)
    assert of_kind("compose") and of_kind("cli") and of_kind("variant")  # the extraction found the README's blocks


def test_train_commands_compose_and_validate(tmp_path):
    failures = []
    for command in of_kind("compose"):
        multirun = any(a in ("-m", "--multirun") for a in command.args)
        overrides = [a for a in command.args if a not in ("-m", "--multirun")]
        for job in sweep_jobs(overrides) if multirun else [overrides]:
            try:
                validate(compose_train(*job, f"paths.output_dir={tmp_path}"))  # Hydra's run folder, outside a run
            except Exception as err:  # noqa: BLE001 - every failing command is listed at once
                failures.append(f"{command}\n    job {' '.join(job)}: {type(err).__name__}: {err}".splitlines()[0])
    assert not failures, "\n".join(failures)


def test_program_commands_parse():
    commands = of_kind("cli")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "docs_cli.py")],
        input=json.dumps([c.args for c in commands]),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    errors = json.loads(proc.stdout.strip().splitlines()[-1])
    failures = [f"{c}\n    {e}" for c, e in zip(commands, errors, strict=True) if e]
    assert not failures, "\n".join(failures)


def test_scripts_parse_and_make_targets_exist():
    failures = []
    for command in of_kind("script"):
        script = ROOT / command.args[0]
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True) if script.is_file() else None
        if proc is None or proc.returncode != 0:
            failures.append(f"{command}: {proc.stderr if proc else 'no such script'}")
    for command in of_kind("make"):
        proc = subprocess.run(["make", "-n", *command.args], cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            failures.append(f"{command}: {proc.stderr}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("command", of_kind("variant"), ids=str)
def test_declared_variant_runs(command, tmp_path):
    words = list(command.variant)
    if is_python(words[0]) and words[1:2] == ["train.py"]:  # the command line itself: test_training's cli_run
        run = train_in_process(tmp_path / "run", *words[2:], f"paths.root_dir={tmp_path}")
        assert run.summary["status"] == "finished", f"{command} => {' '.join(words)}: {run.summary}"
        return
    if is_python(words[0]):
        words[0] = sys.executable
    proc = subprocess.run(words, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{command} => {' '.join(words)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
