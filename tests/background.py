"""Work that waits on other processes, run in a thread beside the tests that need no such wait.

pytest runs tests one after another, which keeps one core of the test machine's two busy.
A few tests spend seconds waiting for processes of their own: the CloudStack agent's JVM
and the planner processes its hook starts, the benchmark's pip and venvs, a copy of the
repository running its corpus tests. Their work is a *job*: a function of
``tmp_path_factory`` that only starts processes and reads and writes files of its own,
registered with ``@job("fixture", ...)`` where ``fixture`` names the fixture (or fixtures)
of the same module that hand its result to the tests.

When the session's tests are known, the ``background_jobs`` fixture (tests/conftest.py)
starts every job a selected test needs, a test needing a job when it uses that fixture; and
tests/conftest.py runs the modules of those tests last. The fixture waits for the job with
``background_jobs.result(fn)``, which returns what the job returned or raises what it
raised (a failed assertion, ``pytest.fail``, ``pytest.skip``) in the test, as if the test had
done the work itself. The work thus runs on the second core while the other tests run.

A job never changes what the whole process shares (the current directory, ``sys.stdout``,
the environment, the umask, signal handlers): that stays with the tests, in the main thread.
Running ``planner.cli.main`` in process (tests/cli_runner.py) changes some, so a job never
does it. The other way round, a job's processes inherit the environment and umask of the
moment they start, which a test may have changed for a while (``monkeypatch.setenv`` of
PLANNER_DEBUG or PLANNER_LOCK_DIR, ``os.umask``): nothing a job runs depends on those. A job
uses absolute paths only, and each ``mktemp`` prefix of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

# At most this many jobs at once: each keeps at least one process busy, beside the tests.
WORKERS = 2


@dataclass(frozen=True)
class Job:
    module: str  # the module that registered it (its tests' module)
    fixtures: tuple[str, ...]  # the fixtures of that module that wait for it
    fn: Callable[[Any], Any]  # fn(tmp_path_factory) -> the result


_JOBS: list[Job] = []


def job(*fixtures: str) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Register ``fn(tmp_path_factory)`` as the job these fixtures of its module wait for."""

    def register(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        _JOBS[:] = [j for j in _JOBS if (j.module, j.fn.__name__) != (fn.__module__, fn.__name__)]
        _JOBS.append(Job(fn.__module__, fixtures, fn))
        return fn

    return register


def jobs_of(item) -> list[Job]:
    """The jobs a collected test needs: those whose fixture it uses, from its own module."""
    module = getattr(getattr(item, "module", None), "__name__", None)
    names = getattr(item, "fixturenames", ())
    return [j for j in _JOBS if j.module == module and set(j.fixtures) & set(names)]


class Background:
    """The jobs of one session, each run once, at most ``WORKERS`` at a time."""

    def __init__(self, tmp_path_factory) -> None:
        # The session's base temporary directory, made here in the main thread: pytest makes
        # it on first use, which two threads at once would race for.
        tmp_path_factory.getbasetemp()
        self._tmp = tmp_path_factory
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="background")
        self._futures: dict[Callable[[Any], Any], Future] = {}

    def start(self, items: Iterable) -> None:
        """Start the jobs these tests need, in the order the tests run."""
        for item in items:
            for j in jobs_of(item):
                self._submit(j.fn)

    def _submit(self, fn: Callable[[Any], Any]) -> Future:
        if fn not in self._futures:
            self._futures[fn] = self._pool.submit(fn, self._tmp)
        return self._futures[fn]

    def result(self, fn: Callable[[Any], Any]) -> Any:
        """What the job returned (starting it now if it was not started); raises what it raised."""
        return self._submit(fn).result()

    def close(self) -> None:
        """Wait for the jobs that run (they own processes); drop those that never started."""
        self._pool.shutdown(wait=True, cancel_futures=True)
