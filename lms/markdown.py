"""Course Markdown (lessons, lab plans) to safe HTML.

CommonMark with tables and strikethrough; ``$...$`` and ``$$...$$`` typeset on the server as MathML;
fenced code highlighted by Pygments with CSS classes (the colours are in static/highlight.css); course
images (``images/...``) pointed at the course version's asset route. Raw HTML in the source is not
interpreted, and the output goes through nh3 with an allowlist of exactly what this renderer produces.
Pure: no Flask; the caller supplies ``asset_url``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache
from html import escape
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote

import latex2mathml.converter
import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup
from mdit_py_plugins.dollarmath import dollarmath_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

AssetUrl = Callable[[str], str]

#: the CSS scope of highlighted code; static/highlight.css is generated with it (see highlight_css()).
HIGHLIGHT_CLASS = "highlight"
_LANGUAGE_RE = re.compile(r"^[A-Za-z0-9_+#.-]{1,40}$")
_FORMATTER = HtmlFormatter(nowrap=True)  # token spans with classes; no inline styles, no wrapper

_HTML_TAGS = {
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "p",
    "br",
    "hr",
    "blockquote",
    "ul",
    "ol",
    "li",
    "strong",
    "em",
    "s",
    "a",
    "img",
    "code",
    "pre",
    "span",
    "div",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
}
# What latex2mathml emits (plus the few MathML elements it may grow into).
_MATHML_TAGS = {
    "math",
    "mrow",
    "mi",
    "mn",
    "mo",
    "ms",
    "mtext",
    "mspace",
    "mfrac",
    "msqrt",
    "mroot",
    "mstyle",
    "merror",
    "mpadded",
    "mphantom",
    "menclose",
    "msub",
    "msup",
    "msubsup",
    "munder",
    "mover",
    "munderover",
    "mmultiscripts",
    "mprescripts",
    "none",
    "mtable",
    "mtr",
    "mtd",
    "semantics",
    "annotation",
}
_MATHML_ATTRIBUTES = {
    "accent",
    "accentunder",
    "columnalign",
    "columnlines",
    "columnspacing",
    "depth",
    "displaystyle",
    "fence",
    "form",
    "height",
    "largeop",
    "linethickness",
    "lspace",
    "mathvariant",
    "maxsize",
    "minsize",
    "movablelimits",
    "notation",
    "rowalign",
    "rowlines",
    "rowspacing",
    "rspace",
    "scriptlevel",
    "separator",
    "stretchy",
    "symmetric",
    "voffset",
    "width",
}
_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "pre": {"class"},
    "span": {"class"},
    "div": {"class"},
    "ol": {"start"},
    "th": {"style"},  # text-align of table columns, nothing else (filter_style_properties)
    "td": {"style"},
    "math": {"display"},
    **{tag: set(_MATHML_ATTRIBUTES) for tag in _MATHML_TAGS - {"math"}},
}


@cache
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=_HTML_TAGS | _MATHML_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https"},  # relative URLs pass through as they are
        filter_style_properties={"text-align"},
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def _render_math(tex: str, options: dict[str, Any]) -> str:
    display = "block" if options.get("display_mode") else "inline"
    try:
        return latex2mathml.converter.convert(tex, display=display)
    except Exception:  # latex2mathml raises assorted errors on malformed TeX; show the source instead
        return f'<code class="math-error">{escape(tex)}</code>'


def _render_display_math_in_text(
    self: Any, tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]
) -> str:
    # $$...$$ inside a paragraph: display-style math in a span (a div cannot sit inside a <p>)
    math = _render_math(tokens[idx].content.strip(), {"display_mode": True})
    return f'<span class="math display">{math}</span>'


def _highlight(code: str, language: str, _attrs: str) -> str:
    language = language.strip().lower()
    if not _LANGUAGE_RE.match(language):
        language = ""
    try:
        lexer = get_lexer_by_name(language) if language else None
    except ClassNotFound:
        lexer = None
    body = highlight(code, lexer, _FORMATTER) if lexer is not None else escape(code)
    code_class = f' class="language-{escape(language)}"' if language else ""
    return f'<pre class="{HIGHLIGHT_CLASS}"><code{code_class}>{body}</code></pre>'


def course_image_path(src: str) -> str | None:
    """The asset path of a Markdown image that names a course file under images/, else None."""
    if not src or "://" in src or src.startswith(("/", "data:", "?", "#")):
        return None
    pure = PurePosixPath(unquote(src.split("?", 1)[0].split("#", 1)[0]))
    if pure.is_absolute() or ".." in pure.parts or pure.parts[:1] != ("images",) or len(pure.parts) < 2:
        return None
    return str(pure)


def _render_image(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    token = tokens[idx]
    path = course_image_path(str(token.attrGet("src") or ""))
    if path is not None:
        token.attrSet("src", env["asset_url"](path))
    return str(self.image(tokens, idx, options, env))


@cache
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    dollarmath_plugin(md, allow_labels=False, allow_digits=False, double_inline=True, renderer=_render_math)
    md.add_render_rule("math_inline_double", _render_display_math_in_text)
    md.add_render_rule("image", _render_image)
    return md


def render_markdown(text: str, asset_url: AssetUrl) -> Markup:
    """Course Markdown as sanitised HTML; ``asset_url(path)`` gives the URL of a course image."""
    html = _parser().render(text, {"asset_url": asset_url})
    return Markup(_cleaner().clean(html))


def highlight_css() -> str:
    """The Pygments colours for highlighted code (the content of static/highlight.css)."""
    return HtmlFormatter(style="default").get_style_defs(f".{HIGHLIGHT_CLASS}")
