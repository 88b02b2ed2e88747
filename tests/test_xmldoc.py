"""planner.xmldoc: hostile input is refused, and edits leave every other byte alone."""

from __future__ import annotations

import time

import pytest
from domains import BILLION_LAUGHS, EXTERNAL_FILE, EXTERNAL_HTTP, PARAMETER_ENTITY, pc_domain

from planner import relayout
from planner.errors import InputError
from planner.xmldoc import Document, Editor, dominant_quote

MINIMAL = "<domain type='kvm'><name>a</name><devices/></domain>"


# --- what Document.parse refuses ---------------------------------------------------------


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty document"),
        (b"  \n\t\n", "empty document"),
        (b"<domain><name>caf\xe9</name></domain>", "not valid UTF-8"),
        (b"<domain><name>a</name>", "malformed XML"),
        (b"<domain><name>a</devices></domain>", "malformed XML"),
        (b"just text", "malformed XML"),
        (b"<network><name>default</name></network>", "root element is <network>"),
        (b"<domain xmlns='urn:other'><name>a</name></domain>", "expected <domain>"),
        # libxml2's amplification guard may stop the bomb before planner sees the DTD
        (BILLION_LAUGHS.encode(), "DTDs are not allowed|entity amplification"),
        (EXTERNAL_FILE.encode(), "DTDs are not allowed"),
        (EXTERNAL_HTTP.encode(), "DTDs are not allowed"),
        (PARAMETER_ENTITY.encode(), "DTDs are not allowed"),
        (b"<!DOCTYPE domain><domain><name>a</name></domain>", "DTDs are not allowed"),
    ],
    ids=[
        "empty",
        "blank",
        "latin1-bytes",
        "unclosed",
        "mismatched-tags",
        "not-xml",
        "network-root",
        "namespaced-root",
        "billion-laughs",
        "external-file-entity",
        "external-http-entity",
        "parameter-entity",
        "bare-doctype",
    ],
)
def test_parse_refuses_bad_or_hostile_input_with_an_input_error(data, message):
    with pytest.raises(InputError, match=message):
        Document.parse(data)


def test_entity_bomb_is_refused_without_being_expanded():
    started = time.monotonic()
    with pytest.raises(InputError):
        relayout(BILLION_LAUGHS)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("bomb", [EXTERNAL_FILE, EXTERNAL_HTTP, PARAMETER_ENTITY])
def test_external_entities_are_never_fetched(bomb):
    started = time.monotonic()
    with pytest.raises(InputError) as err:
        relayout(bomb)
    assert "root:" not in str(err.value)  # nothing of /etc/passwd leaks into the message
    assert time.monotonic() - started < 1.0  # no network round trip was attempted


def test_xinclude_is_kept_as_text_and_not_processed():
    xml = pc_domain(
        "<xi:include xmlns:xi='http://www.w3.org/2001/XInclude' "
        "href='file:///etc/passwd' parse='text'/>"
    )
    out = relayout(xml).xml
    assert "href='file:///etc/passwd'" in out
    assert "root:x:" not in out


def test_utf8_byte_order_mark_is_accepted():
    doc = Document.parse(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert doc.root.tag == "domain"


def test_encoding_declaration_is_accepted_from_bytes_and_from_str():
    xml = "<?xml version='1.0' encoding='UTF-8'?>\n" + MINIMAL
    assert Document.parse(xml.encode()).root.find("name").text == "a"
    assert Document.parse(xml).root.find("name").text == "a"


def test_non_ascii_text_survives_a_relayout_byte_for_byte():
    name = "/img/caf\u00e9-\u65e5\u672c.img"
    xml = pc_domain(
        f"<disk type='file' device='disk'>\n  <source file='{name}'/>"
        "\n  <target dev='vda' bus='virtio'/>\n</disk>"
    )
    out = relayout(xml.encode("utf-8")).xml
    assert f"<source file='{name}'/>" in out


# --- mapping elements to their text ------------------------------------------------------

TRICKY = """<?xml version='1.0'?>
<?some-pi with <angle> brackets?>
<domain type='kvm' xmlns:q='urn:example:q'>
  <!-- a comment with <interface type='x'><address type='pci' slot='0x03'/></interface> -->
  <name>a&amp;b</name>
  <description><![CDATA[<devices><disk/></devices>]]></description>
  <q:thing q:attr="1"><q:inner/></q:thing>
  <devices>
    <disk type='file' device='disk'>
      <source file='/a>b/c.img'/>
      <target dev='vda' bus='virtio'/>
      <address
         type = "pci"   domain='0' bus='0'	slot='5' function='0' />
    </disk>
  </devices>
</domain>
"""


def test_every_element_maps_to_its_own_start_tag_despite_comments_cdata_and_pis():
    doc = Document.parse(TRICKY)
    assert len(doc.spans) == len(doc.elements)
    for el, span in zip(doc.elements, doc.spans):
        name = (f"{el.prefix}:" if el.prefix else "") + el.xpath("local-name()")
        assert doc.text.startswith(f"<{name}", span.start), name
        assert doc.text[span.start_end - 1] == ">"


def test_an_edit_to_one_attribute_leaves_the_rest_of_the_tag_as_written():
    doc = Document.parse(TRICKY)
    addr = doc.root.find("devices/disk/address")
    ed = Editor(doc)
    ed.set_attrs(addr, {"slot": "0x0b", "domain": "0x0000"})
    out = ed.result()
    rewritten = (
        "<address\n         type = \"pci\"   domain='0x0000' bus='0'\tslot='0x0b' function='0' />"
    )
    assert rewritten in out
    # and everything else is byte-identical
    assert out.replace("domain='0x0000'", "domain='0'").replace("slot='0x0b'", "slot='5'") == TRICKY


def test_set_attrs_adds_new_attributes_at_the_end_in_the_documents_quote_style():
    text = '<domain><devices><x a="1" b=\'2\'/><y c="3"/></devices></domain>'
    doc = Document.parse(text)
    ed = Editor(doc)
    ed.set_attrs(doc.root.find("devices/x"), {"b": "two", "z": "new"})
    assert ed.result() == (
        '<domain><devices><x a="1" b=\'two\' z="new"/><y c="3"/></devices></domain>'
    )


def test_set_attrs_with_none_removes_the_attribute():
    text = "<domain><devices><address type='pci' slot='5' multifunction='on'/></devices></domain>"
    doc = Document.parse(text)
    ed = Editor(doc)
    ed.set_attrs(doc.root.find("devices/address"), {"multifunction": None})
    assert ed.result() == "<domain><devices><address type='pci' slot='5'/></devices></domain>"


def test_attribute_values_are_escaped_for_their_quote():
    doc = Document.parse("<domain><x a='1'/></domain>")
    ed = Editor(doc)
    ed.set_attrs(doc.root.find("x"), {"a": "it's <&>"})
    assert ed.result() == "<domain><x a='it&apos;s &lt;&amp;>'/></domain>"


def test_append_child_opens_an_empty_element_and_indents_one_step_deeper():
    text = "<domain>\n    <devices>\n        <memballoon/>\n    </devices>\n</domain>"
    doc = Document.parse(text)
    ed = Editor(doc)
    ed.append_child(doc.root.find("devices/memballoon"), "<address type='pci'/>")
    assert ed.result() == (
        "<domain>\n    <devices>\n        <memballoon>\n"
        "            <address type='pci'/>\n        </memballoon>\n    </devices>\n</domain>"
    )


def test_append_child_follows_the_last_child_at_its_siblings_indentation():
    text = (
        "<domain>\n\t<devices>\n\t\t<disk>\n\t\t\t<target dev='vda'/>\n\t\t</disk>\n"
        "\t</devices>\n</domain>"
    )
    doc = Document.parse(text)
    ed = Editor(doc)
    ed.append_child(doc.root.find("devices/disk"), "<address type='pci'/>")
    assert ed.result() == text.replace("'vda'/>", "'vda'/>\n\t\t\t<address type='pci'/>")


def test_append_child_into_an_element_with_only_a_comment_keeps_the_comment():
    text = "<domain>\n  <devices>\n    <!-- nothing yet -->\n  </devices>\n</domain>"
    doc = Document.parse(text)
    ed = Editor(doc)
    ed.append_child(doc.root.find("devices"), "<memballoon/>")
    assert ed.result() == (
        "<domain>\n  <devices>\n    <!-- nothing yet -->\n    <memballoon/>\n"
        "  </devices>\n</domain>"
    )


def test_no_edits_give_back_the_exact_text():
    doc = Document.parse(TRICKY)
    assert Editor(doc).result() == TRICKY


@pytest.mark.parametrize(
    "text, quote",
    [("<a x='1' y='2' z=\"3\"/>", "'"), ('<a x="1" y="2"/>', '"'), ("<a/>", '"')],
)
def test_dominant_quote_is_the_one_most_attributes_use(text, quote):
    assert dominant_quote(text) == quote


def test_relayout_indents_what_it_adds_like_the_document_does():
    tabbed = pc_domain("<memballoon model='virtio'/>").replace("    ", "\t\t").replace("  ", "\t")
    out = relayout(tabbed).xml
    assert "\t\t<memballoon model='virtio'>\n\t\t\t<address type='pci'" in out
    assert "\n\t<metadata>\n\t\t<planner:layout" in out
