"""``planner audit`` and ``planner relayout --all`` in process through main(argv), against
libvirtd (throwaway domains under a unique prefix: see tests/fleet_host.py)."""

from __future__ import annotations

import json

import pytest
from conftest import URI
from fleet_host import XML_INACTIVE, hosted

from planner.cli import main

pytestmark = pytest.mark.libvirt


@pytest.fixture
def host(conn, tmp_path):
    yield from hosted(conn, tmp_path)


def test_cli_audit_exit_status_and_json(conn, host, capsys):
    ok, _ = host.define("ok", laid_out=True, start=False)
    risky, _ = host.define("risky", start=False)
    assert main(["audit", "-c", URI, ok]) == 0
    assert main(["audit", "-c", URI, ok, risky]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["DOMAIN", "STATE", "MACHINE"]
    assert f"{risky}: at-risk: a plain attach gives ens9, not ens5 (config)" in out
    assert main(["audit", "-c", URI, ok, risky, host.prefix + "missing"]) == 2
    capsys.readouterr()
    assert main(["audit", "-c", URI, "--json", ok]) == 0
    doc = json.loads(capsys.readouterr().out)
    (row,) = doc["domains"]
    assert (row["verdict"], row["laid_out"], row["next_planner"]["guest_name"]) == (
        "ok",
        True,
        "ens5",
    )
    assert row["next_virsh"] == {
        "live": None,
        "config": {"address": "0000:00:05.0", "guest_name": "ens5"},
    }


def test_cli_audit_without_names_covers_every_domain(conn, host, capsys):
    ok, _ = host.define("all-ok", laid_out=True, start=False)
    risky, _ = host.define("all-risky")
    code = main(["audit", "-c", URI, "--json"])
    rows = {r["domain"]: r for r in json.loads(capsys.readouterr().out)["domains"]}
    assert (rows[ok]["verdict"], rows[risky]["verdict"]) == ("ok", "at-risk")
    assert rows[risky]["state"] == "running"
    assert code in (1, 2)  # other domains on a shared host may be worse, never better


def test_cli_relayout_all(conn, host, capsys):
    default, dom = host.define("cli-default")
    laid, _ = host.define("cli-laidout", laid_out=True, start=False)
    only = host.prefix + "cli-*"
    before = dom.XMLDesc(XML_INACTIVE)
    assert main(["relayout", "-c", URI, "--all", "--define", "--dry-run", "--only", only]) == 0
    out = capsys.readouterr().out
    assert f"{default}: would be defined (takes effect at the next cold boot" in out
    assert out.endswith("(dry run: nothing defined)\n")
    assert dom.XMLDesc(XML_INACTIVE) == before
    assert main(["relayout", "-c", URI, "--all", "--define", "--only", only]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{default}: defined (takes effect at the next cold boot (destroy + start))",
        f"{laid}: skipped (already laid out)",
        "2 domain(s): 1 defined, 1 skipped",
    ]
    # unfiltered, dry: every domain of the host is looked at, nothing is defined
    assert main(["relayout", "-c", URI, "--all", "--force"]) in (0, 2, 6)
    out = capsys.readouterr().out
    assert f"{default}: would be defined" in out or f"{default}: unchanged" in out


def test_cli_relayout_all_json_and_a_failure_does_not_stop_the_rest(conn, host, capsys):
    from fleet_host import domain, nic

    from planner.layout import NAMESPACE

    bad = host.prefix + "j-a-bad"
    host.names.append(bad)
    conn.defineXML(
        domain(
            bad,
            "pc",
            nic(1),
            meta=f"\n  <metadata><planner:layout xmlns:planner='{NAMESPACE}'>"
            "<planner:policy nic-slots='many'/></planner:layout></metadata>",
        )
    )
    default, dom = host.define("j-b-default", start=False)
    args = ["relayout", "-c", URI, "--all", "--define", "--only", host.prefix + "j-*"]
    assert main([*args, "--json"]) == 2  # the first failure's code: bad input
    rows = json.loads(capsys.readouterr().out)["domains"]
    assert [(r["domain"], r["status"], r["defined"]) for r in rows] == [
        (bad, "failed", False),
        (default, "defined", True),
    ]
    assert "unreadable planner metadata" in rows[0]["note"]
    assert "urn:libvirt-nic-planner:layout:1" in dom.XMLDesc(XML_INACTIVE)
