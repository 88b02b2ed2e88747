"""Safe parsing of domain XML and byte-faithful edits to it.

lxml gives the tree the planner reads. The rewrite, though, is applied to the
original text: only the start tags of changed ``<address>`` elements and the
inserted elements differ, so quoting, attribute order, whitespace inside tags,
comments, entity references and unknown or namespaced elements stay exactly as
they were. An element is located in the text by its position in document order,
which lxml's ``iter()`` and a scan of the start tags agree on for any well-formed
document without a DTD (DTDs are refused: no entity can be expanded or fetched).
"""

from __future__ import annotations

import functools
import re
from collections import namedtuple
from dataclasses import dataclass, field

from lxml import etree

from .errors import InputError

_PARSER_OPTS = dict(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_blank_text=False,
    remove_comments=False,
    remove_pis=False,
    strip_cdata=False,
)

# Markup tokens of a well-formed document, in the order they appear: comments, PIs,
# CDATA, a declaration (a DTD: refused), end tags and start tags. A start tag runs to
# the first '>' outside quotes; it is empty if it ends with '/>'.
_TOKEN = re.compile(
    r"""<(?:!--.*?-->|\?.*?\?>|!\[CDATA\[.*?\]\]>|!|/[^>]*>|[^\s/>!?](?:[^>"']+|"[^"]*"|'[^']*')*>)""",
    re.S,
)
_ATTR = re.compile(r"(\s+)([^\s=/>]+)(\s*=\s*)(\"[^\"]*\"|'[^']*')")


class Span(namedtuple("Span", "start start_end end end_end", defaults=(None, None))):
    """Where an element sits in the text: its start tag, and its end tag if not empty.

    start_end is the index just past the start tag's '>'; end is the index of '</'
    of the end tag and end_end the index past it, both None for an empty element.
    A named tuple, not a dataclass: a document has one per element, and creating a
    tuple costs a fraction of a frozen dataclass's __init__.
    """

    __slots__ = ()


# The largest document (or device XML) planner reads: a domain of thousands of devices
# is a few hundred KiB. Larger input is refused before it is decoded or parsed.
MAX_INPUT = 16 * 2**20


def check_size(size: int, what: str = "domain XML") -> None:
    """Refuse input larger than :data:`MAX_INPUT` (``size`` in bytes, or characters)."""
    if size > MAX_INPUT:
        raise InputError(
            f"{what} is larger than {MAX_INPUT // 2**20} MiB: refused unread", limit=MAX_INPUT
        )


def _decode(data: bytes | str, what: str = "domain XML") -> str:
    check_size(len(data), what)
    if isinstance(data, str):
        return data
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 at byte {exc.start}") from None


@dataclass
class Document:
    """A parsed domain document: the original text, the lxml tree, and element spans.

    The spans (where each element sits in the text) are built on first use: only an
    :class:`Editor` needs them, so reading a topology (show, hot-plug) skips the scan.
    """

    text: str
    root: etree._Element
    elements: list[etree._Element]
    _index: dict[etree._Element, int] = field(default_factory=dict, repr=False)
    _spans: list[Span] | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, data: bytes | str) -> Document:
        text = _decode(data)
        if not text.strip():
            raise InputError("empty document")
        # lxml refuses str input that carries an encoding declaration: give it bytes.
        parser = etree.XMLParser(**_PARSER_OPTS)
        try:
            root = etree.fromstring(text.encode("utf-8"), parser)
        except etree.XMLSyntaxError as exc:
            msg = str(exc).splitlines()[0] if str(exc) else "syntax error"
            raise InputError(f"malformed XML: {msg}") from None
        tree = root.getroottree()
        if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
            raise InputError("DTDs are not allowed in domain XML (no entities are expanded)")
        if root.tag != "domain":
            raise InputError(f"root element is <{root.tag}>, expected <domain>")
        elements = [el for el in root.iter() if isinstance(el.tag, str)]
        doc = cls(text, root, elements)
        doc._index = {el: i for i, el in enumerate(elements)}
        return doc

    @property
    def spans(self) -> list[Span]:
        """Start/end tag spans of every element, in document order (scanned once)."""
        if self._spans is None:
            spans = _scan(self.text)
            if len(spans) != len(self.elements):
                raise InputError(
                    "document structure could not be mapped (entities are not supported)"
                )
            self._spans = spans
        return self._spans

    @functools.cached_property
    def quote(self) -> str:
        """The attribute quote the document mostly uses (see :func:`dominant_quote`)."""
        return dominant_quote(self.text)

    def position(self, el: etree._Element) -> int:
        return self._index[el]

    def span(self, el: etree._Element) -> Span:
        return self.spans[self._index[el]]

    def indent_of(self, el: etree._Element) -> str:
        """The whitespace between the start of el's line and its start tag."""
        start = self.span(el).start
        line_start = self.text.rfind("\n", 0, start) + 1
        prefix = self.text[line_start:start]
        return prefix if prefix.strip() == "" else ""

    def indent_unit(self) -> str:
        """The document's indentation step, guessed from the root's first child."""
        for child in self.root:
            if isinstance(child.tag, str):
                unit = self.indent_of(child)
                return unit or "  "
        return "  "


def parse_element(data: bytes | str, what: str = "device XML") -> etree._Element:
    """Parse a standalone element (a device for hot-plug) with the same safety rules."""
    text = _decode(data, what)
    if not text.strip():
        raise InputError(f"{what} is empty")
    try:
        el = etree.fromstring(text.encode("utf-8"), etree.XMLParser(**_PARSER_OPTS))
    except etree.XMLSyntaxError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise InputError(f"malformed {what}: {msg}") from None
    tree = el.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise InputError(
            f"DTDs are not allowed in {what}: the {what} declares entities, "
            "which are never expanded nor passed on"
        )
    return el


def _scan(text: str) -> list[Span]:
    """Start/end tag spans of every element, in document order."""
    spans: list[Span] = []
    stack: list[int] = []
    for m in _TOKEN.finditer(text):
        start, end = m.span()
        kind = text[start + 1]
        if kind == "/":
            if not stack:
                raise InputError("malformed XML: unbalanced end tag")
            i = stack.pop()
            s = spans[i]
            spans[i] = Span(s.start, s.start_end, start, end)
        elif kind == "!":
            if end - start == 2:  # <!DOCTYPE, <!ENTITY ...
                raise InputError("DTDs are not allowed in domain XML (no entities are expanded)")
        elif kind != "?":
            spans.append(Span(start, end))
            if text[end - 2] != "/":
                stack.append(len(spans) - 1)
    return spans


def _quote(value: str, quote: str) -> str:
    esc = value.replace("&", "&amp;").replace("<", "&lt;")
    esc = esc.replace(quote, "&quot;" if quote == '"' else "&apos;")
    return f"{quote}{esc}{quote}"


def dominant_quote(text: str) -> str:
    """The attribute quote character the document mostly uses (libvirt: ', virt-install: ")."""
    return "'" if text.count("='") > text.count('="') else '"'


class Editor:
    """Collects text edits against a Document and applies them in one pass."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.quote = doc.quote
        self._edits: list[tuple[int, int, str]] = []  # (start, end, replacement)
        self._tags: dict[int, str] = {}  # element position -> its rewritten start tag
        self._inside: dict[int, list[str]] = {}  # empty element position -> children to add

    def set_attrs(self, el: etree._Element, values: dict[str, str | None]) -> None:
        """Set (or with None, remove) attributes in el's start tag, in place.

        Existing attributes keep their position and quote style; new ones are added
        at the end of the tag in the document's dominant quote style.
        """
        pos = self.doc.position(el)
        span = self._checked_span(el)
        tag = self._tags.get(pos, self.doc.text[span.start : span.start_end])
        pending = dict(values)

        def repl(m: re.Match[str]) -> str:
            name = m.group(2)
            if name not in pending:
                return m.group(0)
            value = pending.pop(name)
            if value is None:
                return ""
            quote = m.group(4)[0]
            return f"{m.group(1)}{name}{m.group(3)}{_quote(value, quote)}"

        new_tag = _ATTR.sub(repl, tag)
        extra = "".join(
            f" {name}={_quote(value, self.quote)}"
            for name, value in pending.items()
            if value is not None
        )
        if extra:
            closing = "/>" if new_tag.endswith("/>") else ">"
            body = new_tag[: -len(closing)]
            head = body.rstrip()
            new_tag = head + extra + body[len(head) :] + closing
        self._tags[pos] = new_tag

    def _checked_span(self, el: etree._Element) -> Span:
        """el's span, after checking that the text there is el's start tag: an edit
        must never splice into another element's markup."""
        span = self.doc.span(el)
        name = el.tag
        if name[0] == "{":  # namespaced: the tag as written, prefix:localname
            name = (f"{el.prefix}:" if el.prefix else "") + etree.QName(el).localname
        text = self.doc.text
        end = span.start + 1 + len(name)
        if text[span.start + 1 : end] != name or text[end] not in " \t\r\n/>":
            raise AssertionError(f"span of <{name}> does not hold its start tag")
        return span

    def append_child(self, parent: etree._Element, markup: str) -> None:
        """Insert markup as parent's last child, indented like its siblings."""
        own = self.doc.indent_of(parent)
        children = [c for c in parent if isinstance(c.tag, str)]
        child_indent = self.doc.indent_of(children[0]) if children else ""
        if not child_indent:
            child_indent = own + self.doc.indent_unit()
        markup = _reindent(markup, child_indent)
        self._checked_span(parent)
        if children:
            after = self._checked_span(children[-1])
            pos = after.end_end if after.end_end is not None else after.start_end
            self._edits.append((pos, pos, "\n" + child_indent + markup))
        else:  # no child elements yet: collected, written once in result()
            self._inside.setdefault(self.doc.position(parent), []).append(
                f"\n{child_indent}{markup}"
            )

    def insert_after(self, sibling: etree._Element, markup: str) -> None:
        """Insert markup right after sibling, at sibling's indentation."""
        s = self._checked_span(sibling)
        pos = s.end_end if s.end_end is not None else s.start_end
        indent = self.doc.indent_of(sibling)
        self._edits.append((pos, pos, "\n" + indent + _reindent(markup, indent)))

    def replace(self, el: etree._Element, markup: str) -> None:
        """Replace the whole element el with markup (kept at el's indentation)."""
        s = self._checked_span(el)
        end = s.end_end if s.end_end is not None else s.start_end
        new = _reindent(markup, self.doc.indent_of(el))
        if self.doc.text[s.start : end] != new:
            self._edits.append((s.start, end, new))

    def result(self) -> str:
        edits = list(self._edits)
        for pos in self._tags.keys() | self._inside.keys():
            span = self.doc.spans[pos]
            original = self.doc.text[span.start : span.start_end]
            tag = self._tags.get(pos, original)
            kids = "".join(self._inside.get(pos, ()))
            el = self.doc.elements[pos]
            own = "\n" + self.doc.indent_of(el)
            if kids and span.end is None:  # <x .../> becomes <x ...>children</x>
                name = (f"{el.prefix}:" if el.prefix else "") + etree.QName(el).localname
                tag = tag[:-2].rstrip() + ">" + kids + f"{own}</{name}>"
            elif kids:  # keep any text content, replace blank space
                inner = self.doc.text[span.start_end : span.end]
                text = inner.rstrip() if inner.strip() else ""
                edits.append((span.start_end, span.end, text + kids + own))
            if tag != original:
                edits.append((span.start, span.start_end, tag))
        out, last = [], 0
        for start, end, new in sorted(edits, key=lambda e: (e[0], e[1])):
            if start < last:
                raise AssertionError("overlapping XML edits")
            out.append(self.doc.text[last:start])
            out.append(new)
            last = end
        out.append(self.doc.text[last:])
        return "".join(out)


def _reindent(markup: str, indent: str) -> str:
    """Indent every line of a multi-line markup snippet after the first."""
    lines = markup.split("\n")
    return "\n".join([lines[0]] + [indent + line if line else line for line in lines[1:]])
