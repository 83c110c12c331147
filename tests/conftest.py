"""pytest glue: collects MicroPython test files under tests/firmware/ as items run by the real
`micropython` interpreter (see m2mkit.testing)."""

import pytest

from m2mkit import testing


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
            self._results = testing.run_file(self.path)
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
