"""mkdocs hook: render the Sphinx roles of docstrings (``:func:`name```) as code.

Docstrings name other objects with Sphinx roles so that they read well in ``help()``;
mkdocstrings renders the backquoted part as ``<code>`` and leaves the role's prefix as
text. This hook drops the prefix, leaving the name in code font.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:py:)?(?:func|mod|class|meth|data|attr|obj|exc|const):(<code>)")


def on_page_content(html: str, **_: Any) -> str:
    """``:func:<code>x</code>`` -> ``<code>x</code>`` in every rendered page."""
    return ROLE.sub(r"\1", html)
