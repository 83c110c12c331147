"""pytest glue: collects MicroPython test files under tests/firmware/ as items run by the real
`micropython` interpreter (see m2mkit.testing). One interpreter runs a whole file, so under
pytest-xdist a file's items must stay on one worker: `--dist loadfile` (dev.sh), not `--dist load`."""

import fcntl
import os
import tempfile

import pytest

from m2mkit import testing

# Tests that run with no other test beside them under pytest-xdist: CPU-bound runs whose simulated
# clock is scaled so far that a second worker's load turns into modem timeouts (the day, then at
# 750x, made 29 recovery steps beside another worker, where its bound is 5; it runs at 500x now).
# `@pytest.mark.alone` on a test does the same.
ALONE = {"tests/host/test_net.py::test_a_day_with_coverage_coming_and_going"}


def pytest_configure(config):
    config.addinivalue_line("markers", "alone: under pytest-xdist, runs while no other worker runs a test")
    # under pytest-xdist (./dev.sh test runs `-n 4 --dist loadfile`): the umqtt.simple cache is the
    # one file every worker would write at a fixed path (.cache/, m2mkit.umqtt_setup), so the
    # controller fetches it once before its workers start; they only read it
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        from m2mkit import umqtt_setup
        from m2mkit.errors import UserError

        try:
            umqtt_setup.path()
        except UserError:
            pass  # offline: the tests that import umqtt say so (m2mkit.testing._frozen)


def _locks(config):
    # two lock files shared by the workers of this run, in the run's own temporary folder (a worker's
    # basetemp is <the run's>/popen-gwN, which pytest removes with old runs): `gate` queues a test that
    # must run alone ahead of the tests that would start beside it, `run` is held shared by every
    # running test and exclusively by one that runs alone
    if not hasattr(config, "_m2m_locks"):
        if config.option.basetemp:
            where = os.path.join(os.path.dirname(os.path.abspath(config.option.basetemp)), "m2mkit-alone")
        else:
            where = os.path.join(tempfile.gettempdir(), "m2mkit-alone-" + config.workerinput["testrunuid"])
        config._m2m_locks = [open(f"{where}.{n}", "a+") for n in ("gate", "run")]
    return config._m2m_locks


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not hasattr(item.config, "workerinput"):  # not an xdist worker: tests run one by one anyway
        yield
        return
    gate, run = _locks(item.config)
    if item.nodeid in ALONE or item.get_closest_marker("alone"):
        fcntl.flock(gate, fcntl.LOCK_EX)  # held while it waits: no other test starts meanwhile
        fcntl.flock(run, fcntl.LOCK_EX)  # the tests running elsewhere end first
        try:
            yield
        finally:
            fcntl.flock(run, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)
    else:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(run, fcntl.LOCK_SH)
        fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(run, fcntl.LOCK_UN)


def pytest_pycollect_makemodule(module_path, parent):
    # tests/firmware/test_*.py are MicroPython modules: CPython must not import them
    if module_path.parent.name == "firmware":
        return MicroPythonFile.from_parent(parent, path=module_path)
    return None


class MicroPythonFile(pytest.File):
    def collect(self):
        for name in testing.test_names(self.path.read_text()):
            yield MicroPythonItem.from_parent(self, name=name)

    def results(self):
        if not hasattr(self, "_results"):
            # the file's own folder under pytest's basetemp (what tmp_path gives a host test), in
            # M2M_TEST_TMP: two suites or two workers never share a path
            tmp = self.config._tmp_path_factory.mktemp(self.path.stem)
            self._results = testing.run_file(self.path, tmp=tmp)
        return self._results


class MicroPythonFailure(Exception):
    pass


class MicroPythonItem(pytest.Item):
    def runtest(self):
        passed, output = self.parent.results()[self.name]
        if not passed:
            raise MicroPythonFailure(output)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MicroPythonFailure):
            return f"MicroPython test {self.name} failed:\n{excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"micropython: {self.name}"
