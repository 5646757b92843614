"""Generate the roff man pages in ``man/`` from the typer app, so they say what ``--help`` says.

Run ``python -m denoise_cli.cli.manpages man`` after changing a command; a test fails when the
committed pages drift from the app.
"""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from .. import __version__

SUMMARY_LIMIT = 300  # a whole first sentence: NAME lines are cut nowhere

EXIT_STATUS = [
    ("0", "Success."),
    ("1", "Runtime failure: an unreadable input, a failed image in a batch, out of memory."),
    ("2", "Usage error: a bad option or argument, CUDA asked for but absent."),
    ("130", "Interrupted (Ctrl-C); no partial output file is left."),
    ("141", "The reader of stdout closed the pipe."),
]
ENVIRONMENT = [
    ("DNCLI_DEVICE", "Default for --device (auto, cpu, cuda, cuda:N)."),
    ("DNCLI_WEIGHTS_DIR", "Directory holding manifest.json and the shipped weights."),
    ("DNCLI_DEBUG", "Set to 1 to show tracebacks, like --debug."),
    ("NO_COLOR", "Disables colour in messages and progress bars."),
    ("RANK, WORLD_SIZE", "Set by torchrun: training runs data-parallel, batches are sharded."),
]


def _escape(text: str) -> str:
    lines = text.replace("\\", "\\e").replace("-", "\\-").splitlines()
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in lines)


def _paragraphs(text: str) -> str:
    blocks = [" ".join(block.split()) for block in (text or "").strip().split("\n\n") if block.strip()]
    return "\n.PP\n".join(_escape(block) for block in blocks)


def _is_argument(param) -> bool:
    return param.param_type_name == "argument"


def _option_lines(command, ctx) -> list[str]:
    lines = []
    for param in command.get_params(ctx):
        record = None if _is_argument(param) else param.get_help_record(ctx)
        if record is None:
            continue
        names, help_text = record
        lines += [".TP", f"\\fB{_escape(names)}\\fR", _escape(" ".join(help_text.split()))]
    return lines


def _arguments(command) -> list[str]:
    lines = []
    for param in command.params:
        if _is_argument(param):
            help_text = getattr(param, "help", "") or ""
            lines += [".TP", f"\\fI{param.name.upper()}\\fR", _escape(help_text)]
    return lines


def _page(title: str, summary: str, synopsis: str, description: str, body: list[str]) -> str:
    header = [f'.TH "{title.upper()}" "1" "" "dncli {__version__}" "dncli manual"', ".SH NAME",
              f"{_escape(title)} \\- {_escape(summary)}", ".SH SYNOPSIS", f"\\fB{_escape(synopsis)}\\fR",
              ".SH DESCRIPTION", _paragraphs(description)]
    return "\n".join(header + body) + "\n"


def pages(app: typer.Typer) -> dict[str, str]:
    """File name -> roff text for ``dncli.1`` and one ``dncli-<command>.1`` per subcommand."""
    root = typer.main.get_command(app)
    root_ctx = root.make_context("dncli", [], resilient_parsing=True)
    commands = sorted(root.list_commands(root_ctx))
    result = {}
    for name in commands:
        command = root.get_command(root_ctx, name)
        ctx = command.make_context(name, [], parent=root_ctx, resilient_parsing=True)
        usage = " ".join(command.collect_usage_pieces(ctx))
        body = []
        if any(_is_argument(p) for p in command.params):
            body += [".SH ARGUMENTS"] + _arguments(command)
        body += [".SH OPTIONS"] + _option_lines(command, ctx)
        body += [".SH SEE ALSO", "\\fBdncli\\fR(1)"]
        summary = command.get_short_help_str(limit=SUMMARY_LIMIT)
        result[f"dncli-{name}.1"] = _page(f"dncli-{name}", summary, f"dncli {name} {usage}", command.help or "", body)
    body = [".SH COMMANDS"]
    for name in commands:
        command = root.get_command(root_ctx, name)
        body += [".TP", f"\\fBdncli {name}\\fR", _escape(command.get_short_help_str(limit=SUMMARY_LIMIT))]
    body += [".SH OPTIONS"] + _option_lines(root, root_ctx)
    body += [".SH EXIT STATUS"] + [line for code, text in EXIT_STATUS for line in (".TP", code, _escape(text))]
    body += [".SH ENVIRONMENT"] + [line for var, text in ENVIRONMENT for line in (".TP", _escape(var), _escape(text))]
    body += [".SH SEE ALSO", ", ".join(f"\\fBdncli-{name}\\fR(1)" for name in commands)]
    result["dncli.1"] = _page("dncli", "image restoration and generation from the command line",
                              "dncli [OPTIONS] COMMAND [ARGS]...", root.help or "", body)
    return result


def write(directory: Path) -> list[Path]:
    from .app import app

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in pages(app).items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "man")):
        print(path)
