"""NMP's paged collections (``GET /v1/customization/jobs`` and the like), read to their end.

NMP pages every list: ``page`` (from 1) and ``page_size`` in the query, filters as
``filter[field]=value`` (the official SDK's encoding), and an answer of ``data`` plus a
``pagination`` object. A page past the end comes back empty, which is also where the SDK's
auto-pager stops; an NMP that sends no ``pagination`` is read the same way, page by page, until
an empty one.
"""

from collections.abc import AsyncIterator, Mapping
from typing import Generic, TypeVar

from pydantic import BaseModel

from .errors import NmpProtocolError
from .http import Call, HostCaller, read
from .models import NmpModel

ItemT = TypeVar("ItemT", bound=BaseModel)

DEFAULT_PAGE_SIZE = 100
# A guard against an NMP that never answers an empty page: 1,000 pages of 100 are far more
# jobs than one namespace holds.
MAX_PAGES = 1000


class Pagination(NmpModel):
    page: int | None = None
    total_pages: int | None = None


class Page(NmpModel, Generic[ItemT]):
    data: list[ItemT]
    pagination: Pagination | None = None

    def is_last(self, number: int) -> bool:
        if not self.data:
            return True
        total = self.pagination.total_pages if self.pagination else None
        return total is not None and number >= total


def query(number: int, page_size: int, filters: Mapping[str, str]) -> dict[str, str | int]:
    params: dict[str, str | int] = {"page": number, "page_size": page_size}
    params.update({f"filter[{field}]": value for field, value in filters.items()})
    return params


async def every_item(
    http: HostCaller,
    path: str,
    item: type[ItemT],
    *,
    filters: Mapping[str, str] | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> AsyncIterator[ItemT]:
    """Each item of the collection at ``path`` that matches ``filters``, page by page."""
    model = Page[item]  # type: ignore[valid-type]
    for number in range(1, MAX_PAGES + 1):
        params = query(number, page_size, filters or {})
        page = read(await http.send(Call("GET", path, params=params)), model)
        for entry in page.data:
            yield entry
        if page.is_last(number):
            return
    raise NmpProtocolError(f"GET {path}: still not at the end after {MAX_PAGES} pages")
