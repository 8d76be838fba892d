"""The ``gradlens`` command line: a thin shell that parses arguments and calls the library.

``gradlens report [OPTIONS] SCRIPT [ARGS...]`` (or ``-m MODULE [ARGS...]``) runs a training script under
gradlens and reports; ``gradlens report [OPTIONS] RECORD.json`` re-renders a saved JSON report. Options
go before the script; everything after the script belongs to it. Exit statuses are the named constants
below. Usage errors print one line and no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn, TextIO

__all__ = ["main", "EXIT_OK", "EXIT_FINDINGS", "EXIT_USAGE", "EXIT_INTERRUPTED", "FAIL_ON"]

EXIT_OK = 0
"""The script succeeded and no finding reached ``--fail-on``."""
EXIT_FINDINGS = 1
"""The script succeeded and a finding reached ``--fail-on``."""
EXIT_USAGE = 2
"""A usage error, an unreadable record or an unwritable destination."""
EXIT_INTERRUPTED = 130
"""The script was interrupted (``KeyboardInterrupt``); the report is still written."""

FAIL_ON = ("error", "warning", "info", "never")
DEFAULT_HTML_OUTPUT = "gradlens-report.html"

_VALUE_OPTIONS = {"-f", "--format", "-o", "--output", "--dot-dir", "--fail-on", "--accumulation", "--ignore"}

_REPORT_USAGE = """\
gradlens report [OPTIONS] SCRIPT [ARGS...]
       gradlens report [OPTIONS] -m MODULE [ARGS...]
       gradlens report [OPTIONS] RECORD.json [RECORD.json ...]"""

_REPORT_DESCRIPTION = """\
Run a training script the way `python SCRIPT` would, with gradlens watching every model and optimizer
(torch and gradlens.engine), then report the autograd bugs it found. Options go before the script;
everything after the script is passed to it. Given a RECORD.json written by `--format json`, re-render it;
given several (the per-rank records a `torchrun ... -m gradlens report` run writes), merge them into one
report that names the rank(s) of each finding. With GITHUB_ACTIONS=true, findings are also printed as
GitHub workflow annotations.

exit status: the script's own non-zero status (or 1 after an uncaught exception, 130 after Ctrl-C) wins;
else 1 when a finding reaches --fail-on; else 0. 2 means a usage error or an unreadable record."""

_REPORT_EPILOG = """\
examples:
  gradlens report examples/loss_history_bug.py
  gradlens report --format html examples/loss_history_bug.py        # writes gradlens-report.html
  gradlens report --format json -o run.json train.py --epochs 3    # --epochs 3 goes to train.py
  gradlens report --format sarif run.json > gradlens.sarif          # re-render a saved record
  gradlens report --fail-on error --ignore accumulation -m mypkg.train
  gradlens report --dot-dir graphs/ examples/loss_history_bug.py    # one DOT file per finding graph
  gradlens report --fix examples/loss_history_bug.py > fix.diff && git apply fix.diff
  gradlens report --fix --apply examples/loss_history_bug.py        # writes the fix, keeps FILE.orig
"""


class UsageError(Exception):
    """A command-line mistake; reported in one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _report_parser() -> argparse.ArgumentParser:
    from .report import FORMATS

    p = _Parser(prog="gradlens report", usage=_REPORT_USAGE, description=_REPORT_DESCRIPTION,
                epilog=_REPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                allow_abbrev=False)
    p.add_argument("-f", "--format", choices=FORMATS, default="text",
                   help="report format (default: text)")
    p.add_argument("-o", "--output", metavar="PATH",
                   help=f"where to write the report (default: stdout; {DEFAULT_HTML_OUTPUT} for html)")
    p.add_argument("--dot-dir", metavar="DIR",
                   help="also write one Graphviz DOT file per finding that has a graph, and the graph of one "
                        "ordinary training step, into DIR")
    p.add_argument("--fail-on", choices=FAIL_ON, default="warning",
                   help="exit 1 when a finding is at least this severe (default: warning)")
    p.add_argument("--accumulation", type=_positive_int, metavar="N",
                   help="declare N backward passes per optimizer step (intended gradient accumulation)")
    p.add_argument("--ignore", action="append", default=[], metavar="RULE",
                   help="do not report RULE (a rule slug such as graph-retained); repeatable")
    p.add_argument("--fix", action="store_true",
                   help="print a unified diff that fixes the findings with a mechanical fix (stdout carries "
                        "only the diff: the report and the script's prints go to stderr unless -o is given); "
                        "files are not changed")
    p.add_argument("--apply", action="store_true",
                   help="with --fix: also write the fixed files, each after a backup FILE.orig")
    p.add_argument("-m", dest="module", metavar="MODULE", help="run a module, like python -m MODULE")
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _split(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``report``'s arguments into gradlens's options and the target with its own arguments."""
    argv = list(argv)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return argv[:i], argv[i + 1:]
        if arg == "-m":
            if i + 1 >= len(argv):
                raise UsageError("argument -m: expected a module name")
            return argv[:i], ["-m", *argv[i + 1:]]
        if arg.startswith("-m") and not arg.startswith("--"):
            return argv[:i], ["-m", arg[2:], *argv[i + 1:]]
        if arg.startswith("-") and arg != "-":
            i += 2 if arg in _VALUE_OPTIONS else 1
            continue
        return argv[:i], argv[i:]
    return argv, []


def _fail(message: str, err: TextIO) -> int:
    err.write(f"gradlens report: error: {message}\n")
    return EXIT_USAGE


def _use_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _parse_report(argv: Sequence[str], parser: argparse.ArgumentParser):
    """Options, ignored rules and the target of ``gradlens report``, or ``UsageError``."""
    from .findings import RULES
    from .runner import Target

    options, rest = _split(argv)
    opts = parser.parse_args(options)
    if opts.apply and not opts.fix:
        raise UsageError("--apply writes the fixes of --fix; use --fix --apply")
    ignore = [slug.strip() for item in opts.ignore for slug in item.split(",") if slug.strip()]
    unknown = [slug for slug in ignore if slug not in RULES]
    if unknown:
        raise UsageError(f"--ignore: unknown rule {unknown[0]!r}; expected one of {', '.join(RULES)}")
    if rest[:1] == ["-m"]:
        if len(rest) < 2 or not rest[1]:
            raise UsageError("argument -m: expected a module name")
        return opts, ignore, Target("module", rest[1], tuple(rest[2:]))
    if not rest:
        raise UsageError("expected a SCRIPT, -m MODULE or RECORD.json (see gradlens report --help)")
    return opts, ignore, Target("script", rest[0], tuple(rest[1:]))


def _is_record(target) -> bool:
    return target.kind == "script" and target.name.lower().endswith(".json")


def _obtain_record(opts: argparse.Namespace, ignore: list[str], target, output: str | None, err: TextIO):
    """Load the record, or run the script to make one (after refusing unusable destinations)."""
    from .record import load_record
    from .report.output import check_dot_dir, check_output
    from .runner import run

    if output is not None:
        check_output(output)
    if opts.dot_dir is not None:
        check_dot_dir(opts.dot_dir)
    if _is_record(target):
        if target.args:
            if all(a.lower().endswith(".json") for a in target.args):  # the ranks of a torchrun run
                from .integrations.distributed import load_and_merge

                return load_and_merge([target.name, *target.args])
            raise UsageError(f"a record takes no arguments; received {' '.join(target.args)!r}")
        return load_record(target.name)
    # Machine-readable reports on stdout must not be mixed with the script's prints.
    # Nor is the diff of --fix.
    quiet_stdout = (output is None and opts.format in ("json", "sarif")) or opts.fix
    with contextlib.redirect_stdout(err) if quiet_stdout else contextlib.nullcontext():
        return run(target, accumulation=opts.accumulation, ignore=ignore, stderr=err)


def _exit_status(record, fail_on: str, rerendered: bool) -> int:
    """The script's own non-zero status wins (not when re-rendering); else findings decide."""
    findings_status = EXIT_FINDINGS if record.reaches(fail_on) else EXIT_OK
    return findings_status if rerendered else (record.exit_status or findings_status)


def report_command(argv: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run ``gradlens report`` with the given arguments and return the exit status."""
    from .errors import RecordError
    from .report import get_reporter
    from .report.output import OutputError, atomic_write, write_dot_dir
    from .runner import TargetError

    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    parser = _report_parser()
    if any(a in ("-h", "--help") for a in _split_quietly(argv)):
        out.write(parser.format_help())
        return EXIT_OK
    try:
        opts, ignore, target = _parse_report(argv, parser)
        output = opts.output
        if output is None and opts.format == "html":
            output = DEFAULT_HTML_OUTPUT
        record = _obtain_record(opts, ignore, target, output, err)
    except (UsageError, RecordError, OutputError, TargetError) as exc:
        return _fail(str(exc), err)

    record = record.without(ignore)
    status = _exit_status(record, opts.fail_on, _is_record(target))
    if not _is_record(target):
        from .integrations.distributed import is_multiprocess, write_rank_record

        if is_multiprocess():  # one rank of torchrun: keep its record for the merge
            try:
                write_rank_record(record, output if opts.format == "json" else None, err)
            except OutputError as exc:
                return _fail(str(exc), err)
            return status
    diff_out = None
    if opts.fix:  # stdout carries only the diff; the report goes to stderr (or to -o)
        diff_out, out = out, err
    color = {"color": _use_color(out)} if opts.format == "text" and output is None else {}
    reporter = get_reporter(opts.format, **color)
    text = reporter.render(record)
    for note in getattr(reporter, "notes", ()):
        err.write(f"gradlens: note: {note}\n")
    written = False
    try:
        if output is None:
            out.write(text)
            out.flush()
        else:
            atomic_write(output, text)
            err.write(f"gradlens: wrote the {opts.format} report to {output}\n")
            if opts.format == "json":
                err.write(f"gradlens: re-render it with: gradlens report --format html {output}\n")
        written = True
        _annotate(record, err if output is None and opts.format in ("json", "sarif") else out)
        if opts.dot_dir is not None:
            paths = write_dot_dir(record, opts.dot_dir)
            plural = "s" if len(paths) != 1 else ""
            err.write(f"gradlens: wrote {len(paths)} DOT file{plural} to {opts.dot_dir}\n")
            if record.step_graph is None and not _is_record(target):
                err.write("gradlens: note: no graph of an ordinary training step was recorded in this run\n")
    except OutputError as exc:
        _fail(str(exc), err)
        if not written:  # keep every finding: show the report where the user can still see it
            err.write(get_reporter("text").render(record))
        return record.exit_status or EXIT_USAGE
    if diff_out is not None:
        try:
            _fix(record, opts.apply, diff_out, err)
        except OSError as exc:
            return _fail(f"--apply could not write a fixed file: {exc}", err)
    return status


def _fix(record, apply: bool, out: TextIO, err: TextIO) -> None:
    """Print the diff of the mechanical fixes on ``out`` and what got none on ``err``; write them if asked."""
    from .fixes import plan_fixes

    plan = plan_fixes(record)
    diff = plan.diff()
    out.write(diff)
    out.flush()
    for s in plan.skipped:
        err.write(f"gradlens: --fix: no automatic fix for {s.rule} at {s.where}: {s.reason}\n")
    n = len(plan.fixed)
    if not n:
        err.write("gradlens: --fix: nothing to fix automatically\n")
        return
    fixed = ", ".join(f"{f.rule} at {f.where}" for f in plan.fixed)
    how = "" if apply else "; apply with: git apply (or patch -p1) from the run's directory, or --fix --apply"
    err.write(f"gradlens: --fix: {n} fix{'es' if n != 1 else ''} ({fixed}){how}\n")
    if apply:
        for path, backup in plan.apply():
            err.write(f"gradlens: --fix: wrote {path} (the original is in {backup})\n")


def _annotate(record, stream: TextIO) -> None:
    """In a GitHub Actions job, also print the findings as workflow annotations."""
    from .integrations.github import annotations, in_github_actions

    if in_github_actions():
        annotations(record.findings, stream, root=record.root)


def _split_quietly(argv: Sequence[str]) -> list[str]:
    """gradlens's own options (for spotting ``--help``), ignoring errors that parsing will report."""
    try:
        return _split(argv)[0]
    except UsageError:
        return []


def _top_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="gradlens",
                description="Find the autograd bugs that make PyTorch training silently wrong.",
                epilog="commands:\n  report    run a training script under gradlens and report (see gradlens "
                       "report --help)", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"gradlens {__version__}")
    p.add_argument("command", nargs="?", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The ``gradlens`` console script and ``python -m gradlens``.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).

    Returns:
        The exit status (``EXIT_OK``, ``EXIT_FINDINGS``, ``EXIT_USAGE``, or the script's own).

    Example:
        >>> main(["--version"])  # doctest: +SKIP
        gradlens 0.1.0
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "report":
        return report_command(args[1:])
    parser = _top_parser()
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(parser.format_help())
        return EXIT_OK
    try:
        parser.parse_args(args[:1])
    except UsageError as exc:
        sys.stderr.write(f"gradlens: error: {exc}\n")
        return EXIT_USAGE
    except SystemExit as exc:  # --version
        return int(exc.code or 0)
    sys.stderr.write(f"gradlens: error: unknown command {args[0]!r}; expected 'report' "
                     "(see gradlens --help)\n")
    return EXIT_USAGE
