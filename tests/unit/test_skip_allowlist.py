"""The CI skip allowlist (tests/skip_allowlist.py) on small sessions of its own."""

import pytest

PLUGIN = ("-p", "tests.skip_allowlist")
SKIP_KIND = ('import pytest\ndef test_k():\n'
             '    pytest.skip("tier 3: set SMARTID_KIND_CONTEXT to ...")\n')
SKIP_ELSE = 'import pytest\ndef test_u():\n    pytest.skip("the feature is gone")\n'
VIEWS = ('import pytest\ndef test_views_are_dumped_as_metadata_and_restored_last():\n'
         '    pytest.skip("this server has no views (code 166); ...")\n')


def session(pytester: pytest.Pytester, ci: bool, files: dict[str, str],
            monkeypatch: pytest.MonkeyPatch) -> pytest.RunResult:
    if ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    for path, text in files.items():
        pytester.path.joinpath(path).parent.mkdir(parents=True, exist_ok=True)
        pytester.path.joinpath(path).write_text(text)
    return pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider")


def test_an_unlisted_skip_fails_the_session_under_ci(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = session(pytester, True, {"tests/unit/test_u.py": SKIP_ELSE}, monkeypatch)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED (not allowed) tests/unit/test_u.py::test_u: "
                                 "the feature is gone*"])


def test_a_listed_skip_passes_under_ci(pytester: pytest.Pytester,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    result = session(pytester, True, {"tests/kind/test_k.py": SKIP_KIND}, monkeypatch)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=1)
    assert "not allowed" not in result.stdout.str()


def test_a_listed_reason_elsewhere_still_fails(pytester: pytest.Pytester,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The allowlist names the test as well as the reason: the kind tier's reason outside
    tests/kind, or the views reason in another file, is not allowed."""
    result = session(pytester, True, {"tests/unit/test_k.py": SKIP_KIND,
                                      "tests/unit/test_views.py": VIEWS}, monkeypatch)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*not allowed) tests/unit/test_k.py::test_k*",
                                 "*not allowed) tests/unit/test_views.py::*"])


def test_setup_skips_count_and_xfails_do_not(pytester: pytest.Pytester,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fixture_skip = ('import pytest\n@pytest.fixture\ndef bed():\n    pytest.skip("no binaries")\n'
                    'def test_b(bed):\n    pass\n'
                    '@pytest.mark.xfail(reason="known")\ndef test_x():\n    assert False\n')
    result = session(pytester, True, {"tests/cluster/test_b.py": fixture_skip}, monkeypatch)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(["*not allowed) tests/cluster/test_b.py::test_b: no binaries*"])
    assert result.stdout.str().count("SKIPPED (not allowed)") == 1  # the xfail is not one


def test_without_ci_a_skip_is_only_a_skip(pytester: pytest.Pytester,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    result = session(pytester, False, {"tests/unit/test_u.py": SKIP_ELSE}, monkeypatch)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=1)


def test_a_failing_session_keeps_its_own_status(pytester: pytest.Pytester,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    broken = 'def test_f():\n    assert False\n'
    result = session(pytester, True, {"tests/unit/test_f.py": broken,
                                      "tests/unit/test_u.py": SKIP_ELSE}, monkeypatch)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1, skipped=1)
