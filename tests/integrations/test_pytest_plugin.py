"""The pytest plugin, run inside pytester: the --gradlens flag, the marker without the flag, ini defaults,
the gradlens fixture, readable failures, and GitHub annotations. Inner tests train on gradlens.engine."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

import gradlens.engine  # noqa: F401 - imported once here, so in-process inner runs never re-import it

pytest_plugins = ["pytester"]



def _plugin_args() -> tuple[str, ...]:
    """Load the plugin by name only when the installed metadata lacks the entry point (an editable install
    made before it was added); with the entry point, pytest loads it by itself."""
    names = {ep.name for ep in importlib.metadata.entry_points(group="pytest11")}
    return () if "gradlens" in names else ("-p", "gradlens.integrations.pytest_plugin")


# hypothesis's terminal summary costs ~2 s a run
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", *_plugin_args())

LOOPS = '''
import pytest
import gradlens.engine as torch

def train(zero_grad=True, steps=4, accumulate=1):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    for step in range(steps):
        if zero_grad:
            opt.zero_grad()
        for _ in range(accumulate):
            torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
'''


@pytest.fixture
def make_tests(pytester):
    def write(body: str, ini: str = "") -> None:
        pytester.makepyfile(test_train=LOOPS + body)
        if ini:
            pytester.makeini("[pytest]\n" + ini)
    return write


def test_flag_fails_buggy_test_with_short_message(pytester, make_tests):
    make_tests("""
def test_buggy():
    train(zero_grad=False)

def test_clean():
    train()
""")
    result = pytester.runpytest_inprocess("--gradlens", *QUIET)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*gradlens: 1 finding at or above 'warning' in this test:*",
        "*ERROR missing-zero-grad at test_train.py:*(step 2): `opt` (SGD) stepped on gradients*",
        "*-v shows the full gradlens report*",
        "*gradlens: watched 2 tests; 1 failed on findings*",
    ])
    assert "Traceback" not in result.stdout.str()


def test_without_flag_or_marker_nothing_is_watched(pytester, make_tests):
    make_tests("""
def test_buggy():
    train(zero_grad=False)
""")
    result = pytester.runpytest_inprocess(*QUIET)
    result.assert_outcomes(passed=1)
    assert "gradlens: watched" not in result.stdout.str()


def test_marker_works_without_flag_and_takes_watch_options(pytester, make_tests):
    make_tests("""
@pytest.mark.gradlens
def test_buggy():
    train(zero_grad=False)

@pytest.mark.gradlens(ignore=["missing-zero-grad"])
def test_buggy_but_ignored():
    train(zero_grad=False)

@pytest.mark.gradlens(fail_on="info", accumulation=2)
def test_accumulation_is_info():
    train(accumulate=2)

@pytest.mark.gradlens(accumulation=2)
def test_accumulation_passes_at_warning():
    train(accumulate=2)
""")
    result = pytester.runpytest_inprocess(*QUIET, "-v")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*test_buggy FAILED*", "*test_buggy_but_ignored PASSED*",
                                 "*test_accumulation_is_info FAILED*",
                                 "*test_accumulation_passes_at_warning PASSED*", "*INFO accumulation*"])
    # -v appends the full report
    result.stdout.fnmatch_lines(["*gradlens: 1 finding (1 error) in 4 training steps*"])


def test_ini_defaults(pytester, make_tests):
    make_tests("""
def test_buggy():
    train(zero_grad=False)
""", ini="gradlens = true\ngradlens_fail_on = never\n")
    result = pytester.runpytest_inprocess(*QUIET)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*gradlens: watched 1 test; 0 failed on findings*"])
    # the command line wins over the ini file
    result = pytester.runpytest_inprocess(*QUIET, "--gradlens-fail-on", "error")
    result.assert_outcomes(failed=1)


def test_ini_ignore(pytester, make_tests):
    make_tests("""
def test_buggy():
    train(zero_grad=False)
""", ini="gradlens_ignore = missing-zero-grad\n")
    pytester.runpytest_inprocess("--gradlens", *QUIET).assert_outcomes(passed=1)


def test_fixture_yields_the_lens(pytester, make_tests):
    make_tests("""
def test_lens(gradlens):
    train(accumulate=3)
    assert gradlens.kinds() == {"accumulation"}
    assert gradlens.kinds("warning") == set()

def test_lens_sees_bug(gradlens):
    train(zero_grad=False)
    assert "missing-zero-grad" in gradlens.kinds("error")
""")
    result = pytester.runpytest_inprocess(*QUIET)
    result.assert_outcomes(passed=1, failed=1)  # the fixture watches: the buggy one still fails
    result.stdout.fnmatch_lines(["*test_lens_sees_bug*", "*ERROR missing-zero-grad*"])


def test_marker_rejects_bad_options(pytester, make_tests):
    make_tests("""
@pytest.mark.gradlens(fail_on="sometimes")
def test_x():
    train()
""")
    result = pytester.runpytest_inprocess(*QUIET)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*gradlens fail_on expects one of error, warning, info, never; received "
                                 "'sometimes'*"])
    assert "Traceback" not in result.stdout.str()


def test_github_annotations(pytester, make_tests, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    make_tests("""
def test_buggy():
    train(zero_grad=False)
""")
    result = pytester.runpytest_inprocess("--gradlens", *QUIET)
    result.stdout.fnmatch_lines(["::error file=test_train.py,line=*,title=gradlens (missing-zero-grad)::*"])


def test_entry_point_is_declared():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    entry = pyproject["project"]["entry-points"]["pytest11"]
    assert entry == {"gradlens": "gradlens.integrations.pytest_plugin"}
