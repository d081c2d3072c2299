"""User text made safe to show: escaped plain text, or Markdown rendered by markdown-it-py with raw HTML disabled,
images dropped and links restricted to http(s)/mailto."""

from __future__ import annotations

import html

SAFE_LINK_SCHEMES = ("http:", "https:", "mailto:")


# ---- safe text ----------------------------------------------------------------------------------

_MARKDOWN = None


def safe_link(url: str) -> bool:
    """Links allowed in rendered Markdown: http(s), mailto, and relative ones (no scheme at all)."""
    url = "".join(url.split()).lower()  # browsers ignore whitespace/control characters in schemes
    return url.startswith(SAFE_LINK_SCHEMES) or ":" not in url.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]


def _markdown():
    global _MARKDOWN
    if _MARKDOWN is None:
        from markdown_it import MarkdownIt

        md = MarkdownIt("commonmark", {"html": False})  # raw HTML in the source is shown escaped
        md.disable("image")  # no remote images (they would load from arbitrary hosts)
        md.validateLink = safe_link

        def link_open(renderer, tokens, idx, options, env):
            tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
            tokens[idx].attrSet("target", "_blank")
            return renderer.renderToken(tokens, idx, options, env)

        md.add_render_rule("link_open", link_open)
        _MARKDOWN = md
    return _MARKDOWN


def render_markdown(text: str) -> str:
    """Markdown -> HTML with raw HTML escaped, no images, and only http(s)/mailto/relative links."""
    return _markdown().render(str(text))


def render_text(text: str, markdown: bool = False) -> str:
    """User text as HTML: escaped plain text (line breaks kept), or safe Markdown."""
    if markdown:
        return f'<div class="wb-md">{render_markdown(text)}</div>'
    return f'<div class="wb-plain">{html.escape(str(text))}</div>'



TEXT_CSS = ("<style>.wb-plain{white-space:pre-wrap;overflow-wrap:anywhere}"
            ".wb-box{border:1px solid #ccc;border-radius:6px;padding:8px 12px;margin:4px;background:#fff}"
            ".wb-side{font-weight:600;color:#555;margin-bottom:4px}.wb-prompt{background:#f6f6f6}"
            ".wb-pair{display:flex;gap:12px;align-items:stretch}.wb-pair>.wb-box{flex:1 1 0;min-width:0}</style>")
