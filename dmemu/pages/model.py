"""The pages of a protocol: what sits on each page, which sub-pages it opens, in what order.

Built from the protocol's declarations alone (no element needed): a parameter or table sits on
the page its ``page=`` names, in the order the protocol declares it; a page with a ``parent``
is a sub-page, opened from its parent, as is any page a `PageButton` on a page opens.
Parameters placed on no page are not shown, as in DataMiner.
"""

from __future__ import annotations

import attrs

from ..protocol import DmemuError, PageButton, Parameter, Protocol, Table


class UnknownPageError(DmemuError, LookupError):
    """A protocol has no page of that name; the message lists the pages it has."""


@attrs.frozen
class PageModel:
    """One page of a protocol's element card."""

    name: str
    parent: str | None
    depth: int
    """0 for a top-level page, 1 for a sub-page of one, and so on."""
    parameters: tuple[Parameter, ...]
    tables: tuple[Table, ...]
    sub_pages: tuple[str, ...]
    """Pages opened from this one (its children and its page buttons' pages), in display order."""

    @property
    def path(self) -> str:
        """The page's name; a sub-page's is led by its parent's (``Configuration > Details``)."""
        return self.name if self.parent is None else f"{self.parent} > {self.name}"


def pages_of(protocol: type[Protocol]) -> tuple[PageModel, ...]:
    """The protocol's pages in display order: top-level pages by ``order`` (then as declared),
    each followed by its sub-pages."""
    declared = {page.name: position for position, page in enumerate(protocol.pages)}
    by_order = sorted(protocol.pages, key=lambda page: (page.order, declared[page.name]))
    children: dict[str | None, list[str]] = {}
    for page in by_order:
        children.setdefault(page.parent, []).append(page.name)

    ordered: list[tuple[str, int]] = []
    placed: set[str] = set()

    def place(name: str, depth: int) -> None:
        if name in placed:  # parents that name each other: each page is shown once
            return
        placed.add(name)
        ordered.append((name, depth))
        for child in children.get(name, ()):
            place(child, depth + 1)

    for name in children.get(None, ()):
        place(name, 0)
    for page in by_order:  # sub-pages whose parents form a loop would otherwise never show
        place(page.name, 0)

    position = {name: index for index, (name, _) in enumerate(ordered)}
    pages: list[PageModel] = []
    for name, depth in ordered:
        parameters = tuple(p for p in protocol.parameters if p.page == name)
        opened = [p.type.page for p in parameters if isinstance(p.type, PageButton)]
        sub_pages = sorted({*children.get(name, ()), *opened} - {name}, key=position.__getitem__)
        pages.append(
            PageModel(
                name=name,
                parent=protocol.model.pages[name].parent,
                depth=depth,
                parameters=parameters,
                tables=tuple(t for t in protocol.tables if t.page == name),
                sub_pages=tuple(sub_pages),
            )
        )
    return tuple(pages)


def find_page(protocol: type[Protocol], name: str) -> PageModel:
    """A page by name (or, when no page has that exact name, the one page that matches it
    ignoring case); `UnknownPageError` lists the pages there are."""
    pages = pages_of(protocol)
    for page in pages:
        if page.name == name:
            return page
    folded = [page for page in pages if page.name.casefold() == name.casefold()]
    if len(folded) == 1:
        return folded[0]
    known = ", ".join(repr(page.name) for page in pages) or "none"
    raise UnknownPageError(f"protocol {protocol.name!r} has no page {name!r}; pages: {known}")
