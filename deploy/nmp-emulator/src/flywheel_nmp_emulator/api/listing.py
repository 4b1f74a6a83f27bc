"""NMP's list protocol, shared by every paged route: ``page`` (1-based), ``page_size``,
``filter[<field>]=<value>`` and ``sort=<field>`` / ``sort=-<field>``.

The official SDK (nemo-microservices 1.5.0) serialises nested params with brackets
(``_qs.Querystring``: ``nested_format="brackets"``), so ``filter={"namespace": "ns"}`` arrives
as ``filter[namespace]=ns``. Its auto-pager (``SyncDefaultPagination``) asks for ``page + 1``
until a page comes back empty, so a page past the end must answer ``data: []``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request

T = TypeVar("T")

# Neither the SDK's docstrings nor its types name a default page size; 10 is the brief's fallback.
DEFAULT_PAGE_SIZE = 10
# NMP's own default order is not documented in the SDK; oldest first keeps paging stable while
# new items are created (they land on the last page instead of shifting every page).
DEFAULT_SORT = "created_at"
_FILTER_PREFIX = "filter["


@dataclass(frozen=True)
class ListQuery:
    page: int
    page_size: int
    sort: str | None
    filters: dict[str, str]


def _positive_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise HTTPException(status_code=422, detail=f"{name} must be an integer >= 1, got {raw!r}")
    return value


def _filters(request: Request) -> dict[str, str]:
    filters: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if not key.startswith(_FILTER_PREFIX):
            continue
        # filter[created_at][gte] (a nested operator) keeps its full inner path as the key.
        inner = key[len(_FILTER_PREFIX) :].removesuffix("]").replace("][", ".")
        filters[inner] = value
    return filters


async def _list_query(request: Request) -> ListQuery:
    return ListQuery(
        page=_positive_int(request, "page", 1),
        page_size=_positive_int(request, "page_size", DEFAULT_PAGE_SIZE),
        sort=request.query_params.get("sort"),
        filters=_filters(request),
    )


ListQueryDep = Annotated[ListQuery, Depends(_list_query)]

# Getters must return comparable, non-None values (sort keys) or query-text-able ones (filters).
Field = Callable[[T], Any]


def _apply_filters(items: list[T], query: ListQuery, fields: Mapping[str, Field[T]]) -> list[T]:
    unknown = sorted(set(query.filters) - set(fields))
    if unknown:
        # Ignoring a filter would silently answer too much; say which ones the emulator knows.
        raise HTTPException(
            status_code=422,
            detail=f"unsupported filter(s) {unknown}; supported: {sorted(fields)}",
        )
    for name, wanted in query.filters.items():
        get = fields[name]
        items = [item for item in items if _as_query_text(get(item)) == wanted]
    return items


def _as_query_text(value: Any) -> str:
    """A value as the SDK would have written it into the query string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _apply_sort(items: list[T], sort: str, keys: Mapping[str, Field[T]]) -> list[T]:
    field = sort.removeprefix("-")
    if field not in keys:
        allowed = sorted({k for f in keys for k in (f, f"-{f}")})
        raise HTTPException(status_code=422, detail=f"sort must be one of {allowed}, got {sort!r}")
    get = keys[field]
    # Python's sort is stable (also with reverse=True): equal keys keep creation order, so
    # pages never overlap or skip items.
    return sorted(items, key=get, reverse=sort.startswith("-"))


def paginate(
    items: Sequence[T],
    query: ListQuery,
    view: Callable[[T], dict[str, Any]],
    *,
    filters: Mapping[str, Field[T]],
    sorts: Mapping[str, Field[T]],
) -> dict[str, Any]:
    """One page of `items` as NMP answers it: object, data, sort and pagination."""
    sort = query.sort or DEFAULT_SORT
    selected = _apply_sort(_apply_filters(list(items), query, filters), sort, sorts)
    total = len(selected)
    start = (query.page - 1) * query.page_size
    page = selected[start : start + query.page_size]
    return {
        "object": "list",
        "data": [view(item) for item in page],
        "sort": sort,
        "pagination": {
            "page": query.page,
            "page_size": query.page_size,
            "current_page_size": len(page),
            "total_pages": math.ceil(total / query.page_size),
            "total_results": total,
        },
    }
