"""The shell commands of the "Clusters" page (``docs/clusters.rst``) and Part 3's sbatch script are valid.

Commands that need a cluster of several machines or GPUs cannot run here, so they are checked the
way the test of the Python snippets compiles the blocks it cannot run: every ``bash`` block and the
sbatch script pass ``bash -n``, every ``torchrun`` line parses with torchrun's own argument parser,
and every command line that starts Part 3 (directly, under torchrun or through the sbatch script)
passes arguments Part 3 accepts. The one-node commands run for real in
``tests/trainers/test_lightning_cluster.py``.
"""
from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from torch.distributed.run import get_args_parser

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "clusters.rst"
TUTORIALS = ROOT / "examples" / "lightning_integration_examples"
PART3_NAME = "Part_3_multi_GPU_example.py"
SLURM_SCRIPT_NAME = "Part_3_slurm.sh"


def bash_blocks(text: str) -> list[str]:
    """The ``.. code-block:: bash`` blocks of a reStructuredText page, dedented."""
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        match = re.match(r"^(\s*)\.\. code-block:: (?:bash|shell|console)\s*$", lines[index])
        index += 1
        if not match:
            continue
        indent, body = len(match.group(1)), []
        while index < len(lines) and (not lines[index].strip() or len(lines[index]) - len(lines[index].lstrip())
                                      > indent):
            body.append(lines[index])
            index += 1
        code = "\n".join(body).strip("\n")
        depth = min(len(line) - len(line.lstrip()) for line in code.splitlines() if line.strip())
        blocks.append("\n".join(line[depth:] for line in code.splitlines()) + "\n")
    return blocks


def command_lines(block: str) -> list[list[str]]:
    """The block's commands, continuation lines joined, split into words without comments.

    A command substitution assigned to a variable (``job=$(sbatch ...)``) counts as its command.
    """
    joined = re.sub(r"\\\n\s*", " ", block)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        substitution = re.fullmatch(r"\w+=\$\((.+)", words[0]) if words else None
        if substitution and words[-1].endswith(")"):
            words = [substitution.group(1), *words[1:-1], words[-1][:-1]]
        if words:
            commands.append(words)
    return commands


def part3_parser():
    """Part 3's argument parser (the example is imported as a module, not run)."""
    spec = importlib.util.spec_from_file_location("part3_example", TUTORIALS / PART3_NAME)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


def part3_arguments(words: list[str]) -> list[str] | None:
    """The arguments a command line passes to Part 3 (through the sbatch script too), or None if it starts neither."""
    for index, word in enumerate(words):
        if word.endswith(PART3_NAME) or word.endswith(SLURM_SCRIPT_NAME):
            return words[index + 1:]
    return None


BLOCKS = bash_blocks(PAGE.read_text())
COMMANDS = [words for block in BLOCKS for words in command_lines(block)]


def test_the_page_shows_the_commands_it_promises():
    programs = {words[0] for words in COMMANDS}
    assert {"sbatch", "torchrun", "scancel", "scontrol"} <= programs
    assert any("--max-restarts" in words for words in COMMANDS)
    assert any("--rdzv-backend" in words for words in COMMANDS) and any("--node-rank" in words for words in COMMANDS)


@pytest.mark.parametrize("script", [*BLOCKS, (TUTORIALS / SLURM_SCRIPT_NAME).read_text()],
                         ids=[f"block{number}" for number in range(len(BLOCKS))] + [SLURM_SCRIPT_NAME])
def test_shell_syntax(script):
    checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr


def test_torchrun_lines_parse_with_torchruns_parser():
    torchrun = [words for words in COMMANDS if words[0] == "torchrun"]
    assert torchrun
    for words in torchrun:
        parsed = get_args_parser().parse_args(words[1:])
        assert parsed.training_script == PART3_NAME, words


def test_every_command_that_starts_part_3_passes_arguments_it_accepts():
    parser = part3_parser()
    started = [arguments for arguments in map(part3_arguments, COMMANDS) if arguments is not None]
    assert len(started) >= 6
    for arguments in started:
        parser.parse_args(arguments)  # an unknown option or a bad value exits (SystemExit fails the test)
