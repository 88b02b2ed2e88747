"""``relayout --all`` refuses options that make no sense with it, in one line, before it
connects to anything (no libvirtd needed)."""

from __future__ import annotations

import pytest
from cli_runner import run_main


@pytest.mark.parametrize(
    "args,says",
    [
        (
            ["--all", "samples/cloudstack-2nic.xml"],
            "--all relayouts the host's domains: it does not go with a file",
        ),
        (["--all", "--domain", "web1"], "it does not go with --domain"),
        (["--all", "-i"], "it does not go with -i"),
        (["--all", "-o", "out.xml"], "it does not go with -o"),
        (["--all", "--diff"], "it does not go with --diff"),
        (["--all", "--check"], "it does not go with --check"),
        (["--dry-run", "samples/cloudstack-2nic.xml"], "--dry-run needs --all"),
        (["--force", "--domain", "web1"], "--force needs --all"),
        (["--only", "web*"], "--only needs --all"),
    ],
)
def test_what_does_not_go_with_all_is_refused_in_one_line(args, says):
    r = run_main("relayout", "-c", "test:///nonexistent-never-connected", *args)
    assert r.returncode == 2
    assert r.stdout == b""
    (line,) = r.stderr.decode().splitlines()
    assert line.startswith("planner: error: ") and says in line, line


def test_an_unreachable_libvirtd_is_exit_5():
    for cmd in (["relayout", "--all"], ["audit"]):
        r = run_main(*cmd, "-c", "qemu+unix:///system?socket=/nonexistent/sock")
        assert r.returncode == 5, r.stderr
        (line,) = r.stderr.decode().splitlines()
        assert line.startswith("planner: error: cannot connect to")
