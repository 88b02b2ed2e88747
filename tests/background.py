"""Work that waits on other processes, run in a thread beside the tests that need no such wait.

pytest runs tests one after another, which keeps one core of the test machine's two busy.
A few tests spend seconds waiting for processes of their own: the CloudStack agent's JVM
and the planner processes its hook starts, the benchmark's pip and venvs, a copy of the
repository running its corpus tests. Their work is a *job*: a function
``fn(tmp_path_factory, env)`` that only starts processes and reads and writes files of its
own, registered with ``@job("fixture", ...)`` where ``fixture`` names the fixture (or fixtures)
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
does it. A job uses absolute paths only, and each ``mktemp`` prefix of its own.

Every process a job starts gets ``env`` (the environment as the session started) as its
environment, never the process's own: pytest sets and unsets PYTEST_CURRENT_TEST in the main
thread around every test (as ``monkeypatch.setenv`` does), and CPython lets the other threads
run while a child made with vfork() reads that environment to exec (3.11.5 and later): such a
child fails now and then with EFAULT ("[Errno 14] Bad address"; one in four while the
environment changes all the time). An audit hook fails the job that starts a process
without ``env=``. What a job's processes still inherit of the moment they start is the umask,
which a test may change for a while (``os.umask``): nothing a job runs depends on it.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

# At most this many jobs at once: each keeps at least one process busy, beside the tests.
WORKERS = 2
# ... at this nice value: the tests, which need a core all along, keep it, and the jobs still
# finish about when the tests that wait for them are reached. Measured (2 cores, the
# selection "not libvirt and not e2e"): quiet, 21.4 s at nice 5 and 10, 23.8 s at 0; beside
# one CPU hog, 32 s at 5 and 0; beside two, 55 s at 5, 39 s at 0 and 125 s at 10.
NICE = 5


@dataclass(frozen=True)
class Job:
    module: str  # the module that registered it (its tests' module)
    fixtures: tuple[str, ...]  # the fixtures of that module that wait for it
    fn: Callable[..., Any]  # fn(tmp_path_factory, env) -> the result


_JOBS: list[Job] = []


def job(*fixtures: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(tmp_path_factory, env)`` as the job these fixtures of its module wait for."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _JOBS[:] = [j for j in _JOBS if (j.module, j.fn.__name__) != (fn.__module__, fn.__name__)]
        _JOBS.append(Job(fn.__module__, fixtures, fn))
        return fn

    return register


def jobs_of(item) -> list[Job]:
    """The jobs a collected test needs: those whose fixture it uses, from its own module."""
    module = getattr(getattr(item, "module", None), "__name__", None)
    names = getattr(item, "fixturenames", ())
    return [j for j in _JOBS if j.module == module and set(j.fixtures) & set(names)]


_thread = threading.local()


def _job_thread() -> None:
    """Marks a worker thread; it, and every process it starts, yields the CPU to the tests
    (Linux: a thread's nice value is its own, and a child inherits its parent thread's)."""
    _thread.runs_jobs = True
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


def _audit(event: str, args: tuple) -> None:
    if event == "subprocess.Popen" and args[3] is None and getattr(_thread, "runs_jobs", False):
        raise RuntimeError(
            f"a background job started {args[0]!r} without env= (see tests/background.py)"
        )


sys.addaudithook(_audit)


class Background:
    """The jobs of one session, each run once, at most ``WORKERS`` at a time."""

    def __init__(self, tmp_path_factory) -> None:
        # The session's base temporary directory, made here in the main thread: pytest makes
        # it on first use, which two threads at once would race for.
        tmp_path_factory.getbasetemp()
        self._tmp = tmp_path_factory
        # The environment for the jobs' processes, taken before any job runs.
        self.env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        self._pool = ThreadPoolExecutor(
            max_workers=WORKERS, thread_name_prefix="background", initializer=_job_thread
        )
        self._futures: dict[Callable[..., Any], Future] = {}
        self._tracebacks: dict[Callable[..., Any], Any] = {}

    def start(self, items: Iterable) -> None:
        """Start the jobs these tests need, in the order the tests run."""
        for item in items:
            for j in jobs_of(item):
                self._submit(j.fn)

    def _submit(self, fn: Callable[..., Any]) -> Future:
        if fn not in self._futures:
            self._futures[fn] = self._pool.submit(fn, self._tmp, dict(self.env))
        return self._futures[fn]

    def result(self, fn: Callable[..., Any]) -> Any:
        """What the job returned (starting it now if it was not started); raises what it raised.

        Every test that waits for a failed job gets its exception with the job's own
        traceback: raised again and again as it is, it would grow by the waiting frames each
        time, and pytest takes minutes to print a traceback of thousands of frames.
        """
        error = self._submit(fn).exception()
        if error is None:
            return self._futures[fn].result()
        raise error.with_traceback(self._tracebacks.setdefault(fn, error.__traceback__))

    def close(self) -> None:
        """Wait for the jobs that run (they own processes); drop those that never started."""
        self._pool.shutdown(wait=True, cancel_futures=True)
