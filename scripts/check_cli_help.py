"""Fail when README.md quotes a `smallfirst` command or option that the real CLI does not have.

Checked: every `smallfirst ...` command line in the README's shell blocks (```bash and unlabelled
fences) and inline code, and the "`smallfirst <command>` options: `--a/-b NAME`, ..." lists.
Each is parsed by the CLI's own parser (the one `--help` describes): subcommands must exist and
options must be ones the command accepts (hidden ones count as missing). Values are not checked,
so placeholders such as `NAME` or `<file>` are fine.

    python scripts/check_cli_help.py [README.md]    # exit 1 and one line per problem
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import typer
from typer._click import Command, Context
from typer._click.exceptions import UsageError

ROOT = Path(__file__).resolve().parent.parent
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}
SHELL_OPERATORS = {"|", "||", "&", "&&", ";", ">", ">>", "<", "(", ")", "2>", "2>&1"}
PLACEHOLDER = re.compile(r"<[A-Za-z][\w.\- ]*>")
OPTIONAL = re.compile(r"(?:(?<=\s)|^)\[|\](?=\s|$)")
INLINE = re.compile(r"`([^`\n]+)`")
OPTIONS_LIST = re.compile(r"`(smallfirst(?: [a-z][\w-]*)*)` options:")
OPTION = re.compile(r"^--?[A-Za-z][\w-]*$")
SENTENCE_END = re.compile(r"\.(\s|$)")


@dataclass(frozen=True, slots=True)
class Quote:
    """One command line as the README writes it."""

    line: int
    args: list[str]
    """What follows `smallfirst`."""
    options: tuple[str, ...] = ()
    """Options named apart from the command line (an "options:" list)."""


def shell_quotes(text: str) -> Iterator[Quote]:
    """`smallfirst` invocations in shell fences (continuation lines joined)."""
    fence: str | None = None
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip().lower()
            continue
        if fence not in SHELL_FENCES:
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        yield from _invocations(pending + stripped, start)
        pending = ""


def inline_quotes(text: str) -> Iterator[Quote]:
    """`smallfirst ...` in inline code, and the options listed after "`smallfirst X` options:"."""
    fence = False
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if line.strip().startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        for span in INLINE.findall(line):
            if span.startswith("smallfirst "):
                yield from _invocations(span, number)
        for match in OPTIONS_LIST.finditer(line):
            sentence = _sentence_from(lines, number - 1, match.end())
            named = [opt for span in INLINE.findall(sentence) for opt in _option_names(span)]
            yield Quote(number, match.group(1).split()[1:], tuple(named))


def _sentence_from(lines: list[str], index: int, column: int) -> str:
    """The rest of the sentence that goes on from lines[index][column:] (a period outside
    inline code, or the paragraph's end, ends it)."""
    parts = [lines[index][column:]]
    for line in lines[index + 1 :]:
        if not line.strip() or line.startswith(("#", "```")):
            break
        parts.append(line)
    text = " ".join(parts)
    masked = INLINE.sub(lambda span: "x" * len(span.group(0)), text)
    end = SENTENCE_END.search(masked)
    return text[: end.start()] if end else text


def _option_names(span: str) -> list[str]:
    """`--model/-m NAME` -> ["--model", "-m"]; spans that are not options -> []."""
    return [name for name in span.split()[0].split("/") if OPTION.match(name)]


def _invocations(command_line: str, line: int) -> Iterator[Quote]:
    plain = OPTIONAL.sub("", PLACEHOLDER.sub("X", command_line))  # `[--port N]`: checked too
    lexer = shlex.shlex(plain, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: prose, not a command
        return
    for i, token in enumerate(tokens):
        if token == "smallfirst" or token.endswith("/smallfirst"):
            args: list[str] = []
            for arg in tokens[i + 1 :]:
                if arg in SHELL_OPERATORS:
                    break
                args.append(arg)
            yield Quote(line, args)


def problem(root: Command, quote: Quote) -> str | None:
    """What is wrong with one quote, in words; None when the CLI accepts it."""
    try:
        command, ctx = _resolve(root, quote.args)
    except UsageError as exc:
        return exc.format_message()
    accepted = {
        name
        for param in command.params
        if not getattr(param, "hidden", False)
        for name in (*param.opts, *param.secondary_opts)
    } | set(ctx.help_option_names)
    missing = [name for name in quote.options if name not in accepted]
    if missing:
        return f"{ctx.command_path} has no option {', '.join(missing)}"
    return None


def _resolve(root: Command, args: list[str]) -> tuple[Command, Context]:
    """Walk the command tree as the CLI would (values are not converted, so a placeholder
    passes); raise UsageError for an unknown command or option."""
    command, name, rest = root, "smallfirst", list(args)
    parent: Context | None = None
    while True:
        _check_options(command, name, rest, parent)
        settings = {"resilient_parsing": True, **command.context_settings}
        ctx = command.context_class(command, info_name=name, parent=parent, **settings)
        with ctx.scope(cleanup=False):
            command.parse_args(ctx, list(rest))
        if not hasattr(command, "commands"):
            return command, ctx
        # A group's parse_args leaves the subcommand where its invoke() reads it back.
        pending = [*ctx._protected_args, *ctx.args]
        if not pending or pending[0] in ctx.help_option_names:
            return command, ctx
        sub_name, sub, rest = command.resolve_command(ctx, pending)
        if sub is None or getattr(sub, "hidden", False):
            raise UsageError(f"{ctx.command_path} has no command {pending[0]!r}")
        command, name, parent = sub, sub_name or pending[0], ctx


def _check_options(command: Command, name: str, args: list[str], parent: Context | None) -> None:
    """The option syntax alone, with the command's own parser (it stops at a group's
    subcommand, whose options are checked at its level)."""
    ctx = Context(command, info_name=name, parent=parent)
    _opts, _args, given = command.make_parser(ctx).parse_args(list(args))
    for param in given:
        if getattr(param, "hidden", False):
            raise UsageError(f"{ctx.command_path}: {param.opts[0]} is hidden from --help")


def problems(readme: str, root: Command) -> list[str]:
    quotes = [*shell_quotes(readme), *inline_quotes(readme)]
    found = []
    for quote in quotes:
        wrong = problem(root, quote)
        if wrong is not None:
            shown = " ".join(["smallfirst", *quote.args])
            found.append(f"README.md:{quote.line}: `{shown}`: {wrong}")
    return found


def main(argv: list[str]) -> int:
    from smallfirst.cli import app

    readme = Path(argv[0]) if argv else ROOT / "README.md"
    found = problems(readme.read_text(encoding="utf-8"), typer.main.get_command(app))
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
