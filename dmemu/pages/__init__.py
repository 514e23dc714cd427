"""How an element is shown: the pages of a protocol and two renderers of them.

- for people, terminal text: `render_page`, `render_pages`, `render_elements`;
- for programs, plain data ready for `json.dumps`: `page_data`, `pages_data`, `elements_data`.

Both read an element through `dmemu.protocol.ReadableElement`, so a live `Element` and a
`SavedElement` (read from a state directory by `SavedSystem`) render alike. Passwords are
never rendered: a set one shows as ``********``, an empty one as nothing.
"""

from .content import PageContent, ParameterContent, TableContent, masked_rows, read_page
from .data import element_data, elements_data, page_data, pages_data
from .model import PageModel, UnknownPageError, find_page, pages_of
from .text import CUT_MARKER, DEFAULT_ROWS, MIN_WIDTH, render_elements, render_page, render_pages

__all__ = [
    "CUT_MARKER",
    "DEFAULT_ROWS",
    "MIN_WIDTH",
    "PageContent",
    "PageModel",
    "ParameterContent",
    "TableContent",
    "UnknownPageError",
    "element_data",
    "elements_data",
    "find_page",
    "masked_rows",
    "page_data",
    "pages_data",
    "pages_of",
    "read_page",
    "render_elements",
    "render_page",
    "render_pages",
]
