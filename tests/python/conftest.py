"""conftest.py - make pytest report in TAP, one line per test, so that
tests/run counts Python tests with the C ones ("ok N - name" /
"not ok N - name", skips marked "# SKIP").  pytest's own output stays."""
import itertools

_numbers = itertools.count(1)


def pytest_runtest_logreport(report):
    # A test's verdict is its call phase, or its setup if that failed or
    # skipped it; a teardown failure counts against it too.
    name = report.nodeid
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if report.skipped:
            print("\nnot ok %d - %s # SKIP" % (next(_numbers), name), flush=True)
        elif report.passed:
            print("\nok %d - %s" % (next(_numbers), name), flush=True)
        else:
            print("\nnot ok %d - %s" % (next(_numbers), name), flush=True)
    elif report.when == "teardown" and report.failed:
        print("\nnot ok %d - %s (teardown)" % (next(_numbers), name), flush=True)
