"""The ``dncli`` root command: global options, subcommands, and the error -> exit-code map.

Exit codes: 0 success, 1 runtime failure (including a batch in which some file failed),
2 usage error, 130 interrupted, 141 output pipe closed by the reader.
Nothing here imports torch: ``--help``, ``--version`` and completion must stay fast.
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Annotated, Callable, Optional

import typer
from typer.exceptions import TyperException

from .. import __version__
from . import console
from . import blindspot, cascade, dde, deblur, denoise, degrade, doctor, evalpsnr, maptrain, models, tasktrain, train

app = typer.Typer(
    name="dncli",
    help="Image restoration and generation from the command line: denoise, deblur, train, measure.\n\n"
         "Images are read from files, directories or '-' (stdin) and written to files, directories or "
         "stdout, so commands chain in pipelines. Sigma is on the 0..255 scale everywhere.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _OutputClosed(Exception):
    """The reader of stdout went away."""


def _closed_pipe_exits_141(function: Callable) -> Callable:
    """Typer ends a command that meets a closed stdout pipe with exit code 1; leaving the command
    as an error typer does not handle lets ``_run`` give the conventional 141 instead."""
    @functools.wraps(function)
    def command(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except BrokenPipeError as exc:
            raise _OutputClosed from exc
    return command


for module in (denoise, deblur, train, maptrain, blindspot, tasktrain, cascade, degrade, evalpsnr, models, doctor):
    app.command(module.NAME, help=module.__doc__, no_args_is_help=module.NO_ARGS_IS_HELP)(
        _closed_pipe_exits_141(module.command))
for name, function in dde.COMMANDS:  # one module, several commands: each one's docstring is its help
    app.command(name, help=function.__doc__, no_args_is_help=True)(_closed_pipe_exits_141(function))


def _version(value: bool) -> None:
    if value:
        print(f"dncli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No messages or progress on stderr, errors only.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    console.quiet = quiet or console.quiet
    console.debug = debug or console.debug


_GLOBAL_FLAGS = ("--quiet", "--debug")


def _hoist_global_flags(argv: list[str]) -> list[str]:
    """Accept ``--quiet``/``--debug`` after the subcommand too, where users tend to type them."""
    if "--" in argv:
        head, tail = argv[: argv.index("--")], argv[argv.index("--"):]
    else:
        head, tail = argv, []
    flags = [a for a in head if a in _GLOBAL_FLAGS]
    return flags + [a for a in head if a not in _GLOBAL_FLAGS] + tail


def _message_of(exc: BaseException) -> str | None:
    """The one-line message of an error the user can act on, or None for a bug."""
    from ..errors import DncliError

    if isinstance(exc, DncliError):
        return str(exc)
    name = type(exc).__name__
    if name in ("ImageError", "WeightsError", "KernelError"):
        return str(exc)
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return "out of memory: use a smaller --tile or --batch-size, or --device cpu"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return None


def _exit_code_of(exc: BaseException) -> int:
    return getattr(exc, "exit_code", 1)


def main(argv: list[str] | None = None) -> int:
    code = _run(argv)
    # Imported only if a trainer loaded it, so that plain commands never import torch here.
    ddp = sys.modules.get("denoise_cli.engine.training.ddp")
    if ddp is not None and ddp.joined():
        ddp.exit_process(code)
    return code


def _run(argv: list[str] | None) -> int:
    argv = _hoist_global_flags(list(sys.argv[1:] if argv is None else argv))
    console.quiet = "--quiet" in argv or "-q" in argv[:1]
    console.debug = "--debug" in argv or os.environ.get("DNCLI_DEBUG") == "1"
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="dncli", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except TyperException as exc:  # typer's (vendored click's) usage errors
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `dncli COMMAND`: show its help
            print(exc.format_message(), file=sys.stderr)
            return 2
        console.error(exc.format_message().replace("\n", " "))
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        console.error("interrupted")
        return 130
    except (BrokenPipeError, _OutputClosed):
        # The reader went away (`| head`): stop quietly, and keep Python from complaining
        # about the unflushable stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # noqa: BLE001 - every error ends as one line unless --debug
        if console.debug:
            raise
        message = _message_of(exc)
        if message is None:
            console.error(f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)")
            return 1
        console.error(message)
        return _exit_code_of(exc)
