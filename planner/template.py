"""NIC XML rendered from a jinja2 template, in a sandbox.

``planner hotplug --network NAME`` (or ``--bridge``, ``--user``) renders a NIC from
``nic.xml.j2``; ``--template FILE`` renders FILE instead. planner runs as root, so a
template is untrusted input:

- it is rendered by ``jinja2.sandbox.ImmutableSandboxedEnvironment``: no attribute
  starting with ``_`` (``''.__class__``, ``cycler.__init__.__globals__``,
  ``self._TemplateReference__context``), no mutation of lists or dicts, ranges of at
  most 100,000 items, and ``*`` / ``**`` bounded (below) so one expression cannot
  exhaust memory or time;
- autoescape is on (the values land in XML attributes) and undefined variables are errors;
- ``--template FILE`` may include, import or extend only templates from FILE's own
  directory (no ``..``, no absolute names, no symlink leading out of it);
- templates are read as UTF-8, strictly.

Every failure (a missing template, a syntax error, a sandbox violation, an undefined
variable, bytes that are not UTF-8) is a :class:`planner.errors.InputError` with a
one-line message.

Where the default template comes from: it lives in the top-level ``templates/``
directory of the source tree, which the wheel ships as the package data
``planner.templates`` (``planner/templates/`` once installed: see ``package-dir`` in
pyproject.toml), found with ``jinja2.PackageLoader`` in every kind of install (a
plain, ``--user``, ``--prefix`` or pipx install, a zip import). Run from a checkout
without an install (``python3 -m planner`` with the repository as current directory)
or from an editable install, the package directory ``planner/`` sits beside
``templates/`` and ``pyproject.toml``, and the template is read from that source tree
directly: it is checked first, so a checkout never picks up the templates of another
installed copy of planner.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import jinja2
from jinja2.loaders import split_template_path
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from .errors import InputError
from .xmldoc import MAX_INPUT

NIC_TEMPLATE = "nic.xml.j2"
MAX_REPEAT = 1 << 20  # longest str/list/tuple a template's ``*`` may build
MAX_EXPONENT = 64  # largest exponent a template's ``**`` may use

_SOURCE_TREE = Path(__file__).resolve().parent.parent


def render_nic(
    type_: str,
    source: str | None,
    model: str = "virtio",
    mac: str | None = None,
    template: str | None = None,
) -> str:
    """A NIC's XML from the default template, or from the template file ``template``."""
    if template:
        path = Path(template)
        display = str(template)
        name = path.name
        loader: jinja2.BaseLoader = DirectoryLoader(path.parent, entry=name)
    else:
        display = name = NIC_TEMPLATE
        loader = _default_loader()
    env = Sandbox(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    try:
        return env.get_template(name).render(type=type_, source=source, model=model, mac=mac)
    except jinja2.TemplateSyntaxError as exc:
        where = f"{exc.filename or display}:{exc.lineno}"
        raise InputError(f"template {where}: syntax error: {_one_line(exc.message)}") from None
    except jinja2.TemplateNotFound as exc:
        raise InputError(f"template {display}: not found: {_one_line(exc.message)}") from None
    except SecurityError as exc:
        raise InputError(f"template {display}: refused by the sandbox: {_one_line(exc)}") from None
    except jinja2.TemplateError as exc:
        raise InputError(f"template {display}: {_one_line(exc)}") from None
    except UnicodeDecodeError as exc:
        why = f"byte {exc.start}: {exc.reason}"
        raise InputError(f"template {display}: not UTF-8 ({why})") from None
    except OSError as exc:
        raise InputError(f"template {display}: cannot read: {exc.strerror}") from None
    except (ArithmeticError, MemoryError, RecursionError, TypeError, ValueError) as exc:
        # errors of the template's own expressions, e.g. 1/0 or 'a' + 1
        raise InputError(f"template {display}: {type(exc).__name__}: {_one_line(exc)}") from None


def _one_line(text) -> str:
    return " ".join(str(text).split()) or "(no message)"


def _default_loader() -> jinja2.BaseLoader:
    source = _SOURCE_TREE / "templates"
    if (_SOURCE_TREE / "pyproject.toml").is_file() and (source / NIC_TEMPLATE).is_file():
        return DirectoryLoader(source)  # a checkout, or an editable install
    try:
        return jinja2.PackageLoader("planner", "templates")  # the package data
    except ValueError:
        raise InputError(
            f"template {NIC_TEMPLATE} not found: planner.templates is not installed"
        ) from None


class Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with ``*`` and ``**`` bounded (jinja2's sandbox is not)."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context, operator, left, right):
        if operator == "**":
            if isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is larger than {MAX_EXPONENT}")
            return left**right
        for seq, count in ((left, right), (right, left)):
            if (
                isinstance(seq, (str, list, tuple))
                and isinstance(count, int)
                and len(seq) * max(count, 0) > MAX_REPEAT
            ):
                raise SecurityError(f"a repetition longer than {MAX_REPEAT}")
        return left * right


class DirectoryLoader(jinja2.FileSystemLoader):
    """Templates from one directory only, read as strict UTF-8.

    FileSystemLoader already refuses ``..`` and reads absolute names inside the
    directory; this also refuses a name that resolves (through a symlink) outside it,
    before anything is read. ``entry``, the template the user named, may be a symlink.
    """

    def __init__(self, directory: Path, entry: str | None = None):
        super().__init__(str(directory), encoding="utf-8", followlinks=False)
        self.root = os.path.realpath(directory)
        self.entry = entry

    def get_source(self, environment, template):
        real = os.path.realpath(os.path.join(self.root, *split_template_path(template)))
        if template != self.entry and os.path.commonpath([real, self.root]) != self.root:
            raise jinja2.TemplateNotFound(f"{template} (resolves outside {self.root})")
        try:
            st = os.stat(real)
        except OSError:
            st = None  # not found (nor a directory): FileSystemLoader says so
        if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise InputError(f"template {template}: not a regular file")
        if st is not None and st.st_size > MAX_INPUT:
            raise InputError(f"template {template}: larger than {MAX_INPUT // 2**20} MiB")
        return super().get_source(environment, template)
