"""Renders docs/cli.md from the `readerstudy` commands themselves, so the reference cannot drift from the code.

Regenerate with: python -m study_app.cli_reference > docs/cli.md
"""

from __future__ import annotations

import textwrap

import click

from study_app.cli import main


def _commands(group: click.Group, prefix: tuple[str, ...]):
    for name in sorted(group.commands):
        command = group.commands[name]
        path = (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, path)
        else:
            yield path, command


def _option_line(param: click.Parameter) -> str:
    if isinstance(param, click.Argument):
        return ""
    names = ", ".join(f"`{o}`" for o in param.opts)
    if param.is_flag:  # type: ignore[attr-defined]
        kind = ""
    elif isinstance(param.type, click.Choice):
        kind = " " + "|".join(param.type.choices)
    else:
        kind = f" {param.metavar or param.type.name.upper()}"
    default = ""
    if param.show_default and param.default not in (None, False, ()):  # type: ignore[attr-defined]
        default = f" (default: `{param.default}`)"
    required = " (required)" if param.required else ""
    return f"- {names}{kind}: {(param.help or '').strip()}{required}{default}"  # type: ignore[attr-defined]


def render_cli_reference() -> str:
    lines = [
        "# CLI reference",
        "",
        "Generated from the commands by `python -m study_app.cli_reference > docs/cli.md`; a test fails when",
        "this file and the commands disagree. Every command that touches the database takes `--db URL`",
        "(default: `$READERSTUDY_DB`, else `./var/readerstudy.sqlite`); only `db upgrade`, `coordinator add`,",
        "`study create` and `demo` create a SQLite file that is not there, every other command says it is missing.",
        "User errors print `error: ...` on stderr and exit non-zero: 1 bad input file, 2 not found (or a bad",
        "setting), 3 not allowed, 4 conflicts with the study's state, 5 invalid input, 6 a needed service (model",
        "server) is unavailable, 7 the study database is busy, full, read-only, damaged, missing or unreachable;",
        "`audit blinding` exits 8 when something readers are sent predicts a draft's source; `drafts generate` and",
        "`drafts regenerate` exit 9 when drafts readers would see are cut, not parsed, empty or duplicated.",
        "",
    ]
    for path, command in _commands(main, ("readerstudy",)):
        context = click.Context(command, info_name=" ".join(path))
        usage = " ".join(command.collect_usage_pieces(context))
        lines += [f"## {' '.join(path)}", "", "```", f"{' '.join(path)} {usage}".rstrip(), "```", ""]
        help_text = click.unstyle(command.help or "").replace("\b\n", "")
        body, _, example = help_text.partition("Example:")
        lines += [" ".join(body.split()), ""]
        options = [line for line in (_option_line(p) for p in command.params) if line and "--help" not in line]
        if options:
            lines += options + [""]
        if example.strip():
            lines += ["Example:", "", "```sh"]
            lines += [line.rstrip() for line in textwrap.dedent(example.strip("\n")).splitlines() if line.strip()]
            lines += ["```", ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render_cli_reference(), end="")
