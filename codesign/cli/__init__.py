"""The ``codesign`` command. Parses flags, calls the library, prints; holds no model logic.

The flags and the dispatch are here; the commands, one module per group:
:mod:`codesign.cli.model` (``evaluate``, ``catalog``, ``bench``), :mod:`codesign.cli.validate`
(``validate``), :mod:`codesign.cli.study` (``search``, ``resume``, ``worker``, ``doctor``,
``export``) and :mod:`codesign.cli.results` (``pareto``, ``report``, ``compare``,
``extend``); what they
print in :mod:`codesign.cli.format`.

Exit codes: 0 ok, 2 bad input (config, CSV, flags, storage URL; nothing is created or
touched), 1 internal error, 130 interrupted.
"""

from __future__ import annotations

import errno
import sys

from codesign.cli.design import cmd_export_design, cmd_recommend
from codesign.cli.format import PROG
from codesign.cli.model import cmd_bench, cmd_catalog, cmd_evaluate
from codesign.cli.parser import parser
from codesign.cli.results import cmd_compare, cmd_extend, cmd_pareto, cmd_report
from codesign.cli.study import (
    cmd_compact,
    cmd_doctor,
    cmd_export,
    cmd_resume,
    cmd_search,
    cmd_worker,
)
from codesign.cli.validate import cmd_validate
from codesign.errors import ConfigError

_USER_OS_ERRORS = {
    errno.ENOSPC: "a disk with free space",
    errno.EDQUOT: "a disk quota with room left",
    errno.EACCES: "a path this user may write",
    errno.EPERM: "a path this user may write",
    errno.EROFS: "a writable file system",
}
"""Operating-system errors a user causes and mends (exit 2), with what was expected."""


COMMANDS = {
    "search": cmd_search,
    "resume": cmd_resume,
    "worker": cmd_worker,
    "pareto": cmd_pareto,
    "evaluate": cmd_evaluate,
    "catalog": cmd_catalog,
    "compare": cmd_compare,
    "extend": cmd_extend,
    "report": cmd_report,
    "doctor": cmd_doctor,
    "export": cmd_export,
    "compact": cmd_compact,
    "validate": cmd_validate,
    "bench": cmd_bench,
    "recommend": cmd_recommend,
    "export-design": cmd_export_design,
}


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:  # a bare `codesign`: what it does and how to start, exit 2 (no command)
        print(parser().format_help(), file=sys.stderr)
        return 2
    try:
        args = parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left (``| head``): what it wanted, it has
        _quiet_stdout()
        return 0
    except OSError as exc:
        if exc.errno not in _USER_OS_ERRORS:
            raise
        # a full disk or a path the user may not write, met where no earlier check could
        # see it (Optuna's own journal append, a read-only run directory): one line, exit 2
        err = ConfigError(exc.filename, "<write>", _USER_OS_ERRORS[exc.errno], exc.strerror)
        print(f"{PROG}: error: {err}; nothing stored is lost: mend it, then `codesign doctor "
              "RUN_DIR` checks the run and `codesign resume RUN_DIR` continues it",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # --help
        return int(exc.code or 0)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of a closed pipe at
    exit raises nothing either."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file (a test's capture)
        pass


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
