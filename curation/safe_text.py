"""Crawled text shown as text: names, sites, reasons and file names come from the web or from
files in a root, so the page must never let them act as markdown or HTML (an image that loads
from another host, a link) or turn the line around (bidirectional controls).

Streamlit renders markdown in headings, alerts, captions, widget labels, radio options, button
labels and help tips; :func:`md` makes a value literal there. Select boxes show options as plain
text: :func:`plain` is enough for those.
"""

from __future__ import annotations

import re
import string

#: Bidirectional formatting characters (embeddings, overrides, isolates, marks): a name carrying
#: U+202E (right-to-left override) reverses the rest of the line it is shown in.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")
#: Every ASCII punctuation character: written as character references they are text to
#: CommonMark, to Streamlit's own syntax (``:red[...]``, ``:emoji:``, ``$math$``) and to GFM's
#: bare-URL links.
_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
#: GFM turns ``http://...``, ``www.`` and ``name@host`` in plain text into links; a word joiner
#: (U+2060, invisible) after the scheme, the ``www`` or the ``@`` breaks the pattern.
WORD_JOINER = "\u2060"
_BARE_LINK = re.compile(r"(?i)(?:https?:|www(?=\.)|@)")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def plain(value: object) -> str:
    """``value`` as one line of text without bidirectional or other control characters."""
    text = _BIDI.sub("", str(value))
    return _CONTROLS.sub("", _LINE_BREAKS.sub(" ", text))


def md(value: object) -> str:
    """``value`` as markdown that shows exactly :func:`plain`'s text: every punctuation mark
    written as a character reference (``&#58;``), so nothing in it is markup: no image, link,
    emphasis, HTML or directive. GFM links bare URLs and addresses in the text after decoding, so
    an invisible word joiner goes after their ``http:``, ``www`` or ``@``."""
    unlinked = _BARE_LINK.sub(lambda m: m.group(0) + WORD_JOINER, plain(value))
    return _PUNCTUATION.sub(lambda m: f"&#{ord(m.group(1))};", unlinked)


__all__ = ["BIDI_CONTROLS", "WORD_JOINER", "md", "plain"]
