"""tests/background.py: a job runs once, its result or its failure reaches the test that waits,
and only the jobs a selected test needs start."""

from __future__ import annotations

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
    def work(factory):
        return fn(factory)

    work.__module__, work.__name__ = module, f"job_{fixture}"
    return job(fixture)(work)


def _item(module: str, *fixtures: str):
    return SimpleNamespace(module=SimpleNamespace(__name__=module), fixturenames=list(fixtures))


def test_a_job_runs_once_in_another_thread_and_its_result_reaches_every_waiter(
    registry, tmp_path_factory
):
    calls = []

    def work(factory):
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
    def work(_):
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
        assert jobs.result(lambda f: f.made_in_main_thread[:]) == [True]
    finally:
        jobs.close()
