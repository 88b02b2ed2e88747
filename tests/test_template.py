"""NIC templates: the default one ships with the package; every template runs in a sandbox.

A template is untrusted input (planner runs as root): attribute tricks, include/import
from outside the template's own directory, bytes that are not UTF-8, missing templates
and syntax errors each end in one ``planner: error:`` line with exit 2, before libvirt is
even asked (so these tests need no libvirtd).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from planner.errors import InputError
from planner.template import DirectoryLoader, render_nic

ROOT = Path(__file__).resolve().parent.parent


def test_the_default_template_renders_network_bridge_and_user_nics():
    el = etree.fromstring(render_nic("network", "default"))
    assert (el.tag, el.get("type"), el.find("source").get("network")) == (
        "interface",
        "network",
        "default",
    )
    assert el.find("model").get("type") == "virtio" and el.find("mac") is None
    el = etree.fromstring(render_nic("bridge", "br0", "e1000", "52:54:00:12:34:56"))
    assert el.find("source").get("bridge") == "br0"
    assert el.find("mac").get("address") == "52:54:00:12:34:56"
    el = etree.fromstring(render_nic("user", None))
    assert el.get("type") == "user" and el.find("source") is None


def test_values_are_escaped_into_the_xml():
    xml = render_nic("network", "a'b\"<c>&d")
    assert etree.fromstring(xml).find("source").get("network") == "a'b\"<c>&d"


def test_the_default_template_is_read_from_the_source_tree_in_a_checkout():
    from planner.template import _default_loader

    loader = _default_loader()
    assert isinstance(loader, DirectoryLoader)
    assert Path(loader.root) == (ROOT / "templates").resolve()


def _render(tmp_path: Path, text: str | bytes, name: str = "nic.j2") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return render_nic("network", "default", template=str(path))


ATTRIBUTE_TRICKS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].system('touch /tmp/planner-pwned') }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ request.application.__globals__ }}",  # undefined: StrictUndefined refuses it
    "{% set l = [] %}{{ l.append(1) }}",  # immutable sandbox: no mutation
    "{{ range.__self__ }}",
    "{{ ('a' * 100000) * 100000 }}",  # bounded repetition
    "{{ 7 ** 999999999 }}",  # bounded exponent
]


@pytest.mark.parametrize("text", ATTRIBUTE_TRICKS)
def test_attribute_tricks_and_unbounded_work_are_one_line_input_errors(tmp_path, text):
    with pytest.raises(InputError) as info:
        _render(tmp_path, f"<interface type='{{{{ type }}}}'>{text}</interface>")
    assert "\n" not in str(info.value)
    assert "nic.j2" in str(info.value)
    assert not Path("/tmp/planner-pwned").exists()


def test_include_and_import_work_from_the_templates_own_directory(tmp_path):
    (tmp_path / "model.j2").write_text("<model type='{{ model }}'/>")
    (tmp_path / "macros.j2").write_text(
        "{% macro src(n) %}<source network='{{ n }}'/>{% endmacro %}"
    )
    xml = _render(
        tmp_path,
        "{% import 'macros.j2' as m %}<interface type='{{ type }}'>"
        "{{ m.src(source) }}{% include 'model.j2' %}</interface>",
    )
    el = etree.fromstring(xml)
    assert el.find("source").get("network") == "default"
    assert el.find("model").get("type") == "virtio"


@pytest.mark.parametrize(
    "statement",
    [
        "{% include '../outside.j2' %}",
        "{% include '/etc/hostname' %}",
        "{% include 'sub/../../outside.j2' %}",
        "{% import '../outside.j2' as o %}",
        "{% extends '../outside.j2' %}",
        "{% include 'link.j2' %}",  # a symlink in the directory, leading out of it
    ],
)
def test_include_and_import_from_outside_the_templates_directory_are_refused(tmp_path, statement):
    (tmp_path / "outside.j2").write_text("<interface type='user'/>")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "sub").mkdir()
    (inner / "link.j2").symlink_to(tmp_path / "outside.j2")
    with pytest.raises(InputError, match="not found") as info:
        _render(inner, statement)
    assert "\n" not in str(info.value)


def test_the_named_template_itself_may_be_a_symlink(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "nic.j2").write_text("<interface type='{{ type }}'/>")
    links = tmp_path / "links"
    links.mkdir()
    (links / "nic.j2").symlink_to(real / "nic.j2")
    xml = render_nic("user", None, template=str(links / "nic.j2"))
    assert etree.fromstring(xml).get("type") == "user"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<interface type='\xff\xfe{{ type }}'/>", "not UTF-8"),
        ("<interface type='{{ type }'/>", "syntax error"),
        ("{% if %}", "syntax error"),
        ("<interface type='{{ nosuchvariable }}'/>", "undefined"),
        ("{{ 1 // 0 }}", "ZeroDivisionError"),
        ("{% include 'missing.j2' %}", "not found"),
    ],
)
def test_broken_templates_are_one_line_input_errors(tmp_path, content, message):
    with pytest.raises(InputError, match=message) as info:
        _render(tmp_path, content)
    assert "\n" not in str(info.value)


def test_a_missing_template_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        render_nic("network", "default", template=str(tmp_path / "nope.j2"))
    with pytest.raises(InputError, match="not found"):
        render_nic("network", "default", template=str(tmp_path))  # a directory


def planner_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "planner", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "content",
    [
        b"{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        b"\xff\xfe",
        b"{% for %}",
    ],
)
def test_the_cli_reports_a_bad_template_in_one_line_with_exit_2(tmp_path, content):
    template = tmp_path / "evil.j2"
    template.write_bytes(content)
    proc = planner_cli(
        "hotplug", "planner-no-such-domain", "--network", "default", "--template", str(template)
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith("planner: error: template ")
    assert proc.stderr.count("\n") == 1, proc.stderr
