"""tests/background.py: a job runs once, its result or its failure reaches the test that waits,
only the jobs a selected test needs start, and a job's processes get the session's environment."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from types import SimpleNamespace

import background
import pytest
from background import Background, job, jobs_of


@pytest.fixture
def registry():
    saved = list(background._JOBS)
    yield
    background._JOBS[:] = saved


def _registered(module: str, fixture: str, fn):
    def work(factory, env):
        return fn(factory)

    work.__module__, work.__name__ = module, f"job_{fixture}"
    return job(fixture)(work)


def _item(module: str, *fixtures: str):
    return SimpleNamespace(module=SimpleNamespace(__name__=module), fixturenames=list(fixtures))


def test_a_job_runs_once_in_another_thread_and_its_result_reaches_every_waiter(
    registry, tmp_path_factory
):
    calls = []

    def work(factory, env):
        calls.append((factory, threading.current_thread() is threading.main_thread()))
        return "done"

    jobs = Background(tmp_path_factory)
    try:
        assert jobs.result(work) == "done"
        assert jobs.result(work) == "done"
    finally:
        jobs.close()
    assert calls == [(tmp_path_factory, False)]


@pytest.mark.parametrize(
    "outcome", [AssertionError("the job's assertion"), pytest.skip.Exception("a skip")]
)
def test_what_a_job_raises_is_raised_in_the_waiting_test(tmp_path_factory, outcome):
    def work(factory, env):
        raise outcome

    jobs = Background(tmp_path_factory)
    try:
        with pytest.raises(type(outcome)) as raised:
            jobs.result(work)
    finally:
        jobs.close()
    assert raised.value is outcome


def test_only_the_jobs_of_selected_tests_start_with_their_module_and_fixture(
    registry, tmp_path_factory
):
    started = []
    wanted = _registered("pkg.test_a", "slow", lambda _: started.append("a"))
    _registered("pkg.test_b", "slow", lambda _: started.append("b"))
    _registered("pkg.test_a", "other", lambda _: started.append("other"))
    items = [_item("pkg.test_a", "slow", "tmp_path"), _item("pkg.test_c", "slow")]
    assert [j.fn for j in jobs_of(items[0])] == [wanted]
    assert jobs_of(items[1]) == []
    jobs = Background(tmp_path_factory)
    jobs.start(items)
    jobs.close()
    assert started == ["a"]


def test_the_base_temporary_directory_is_made_in_the_main_thread_before_any_job():
    """pytest makes it on first use: two jobs' first ``mktemp`` at once would race for it."""

    class Factory:
        made_in_main_thread: list[bool] = []

        def getbasetemp(self):
            self.made_in_main_thread.append(threading.current_thread() is threading.main_thread())

    factory = Factory()
    jobs = Background(factory)
    try:
        assert jobs.result(lambda f, env: f.made_in_main_thread[:]) == [True]
    finally:
        jobs.close()


def test_a_job_that_fails_raises_with_its_own_traceback_in_every_waiting_test(tmp_path_factory):
    def work(factory, env):
        raise AssertionError("the job's assertion")

    jobs = Background(tmp_path_factory)
    lengths = []
    try:
        for _ in range(5):
            with pytest.raises(AssertionError) as raised:
                jobs.result(work)
            lengths.append(len(raised.traceback))
    finally:
        jobs.close()
    assert lengths == lengths[:1] * 5


def test_a_jobs_processes_get_the_environment_the_session_started_with(
    tmp_path_factory, monkeypatch
):
    monkeypatch.setenv("PLANNER_TEST_BACKGROUND", "before")
    jobs = Background(tmp_path_factory)
    monkeypatch.setenv("PLANNER_TEST_BACKGROUND", "after")
    show = [sys.executable, "-c", "import os; print(os.environ['PLANNER_TEST_BACKGROUND'])"]
    try:
        out = jobs.result(lambda f, env: subprocess.run(show, env=env, capture_output=True))
    finally:
        jobs.close()
    assert out.stdout.decode().strip() == "before"
    assert "PYTEST_CURRENT_TEST" not in jobs.env and "PYTEST_CURRENT_TEST" in os.environ


def test_a_job_that_starts_a_process_without_env_fails():
    """pytest changes the environment around every test: a child that reads it while it
    changes (vfork, the GIL released) fails now and then with EFAULT."""

    class Factory:
        def getbasetemp(self):
            pass

    jobs = Background(Factory())
    try:
        with pytest.raises(RuntimeError, match=r"without env= \(see tests/background.py\)"):
            jobs.result(lambda f, env: subprocess.run(["true"]))
        assert jobs.result(lambda f, env: subprocess.run(["true"], env=env).returncode) == 0
    finally:
        jobs.close()
    assert subprocess.run(["true"]).returncode == 0  # the tests' own processes need no env=
