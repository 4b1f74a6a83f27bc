"""Jinja templates of evaluation configs ("{{ item.request.messages | tojson }}"), compiled once
per job. `item` is a dataset record, `sample` the model's answer to it."""

from __future__ import annotations

import json
from typing import Any

import jinja2


class TemplateError(ValueError):
    """A template that does not compile or does not render to what the task needs."""


_ENV = jinja2.Environment(
    undefined=jinja2.ChainableUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)


def _tojson(value: Any) -> str:
    # Plain JSON: Jinja's built-in tojson escapes <, > and & for HTML, which a model would see.
    if isinstance(value, jinja2.Undefined):
        raise TemplateError("the template refers to a field the dataset record does not have")
    return json.dumps(value, ensure_ascii=False)


_ENV.filters["tojson"] = _tojson


class Template:
    def __init__(self, source: str) -> None:
        try:
            self._template = _ENV.from_string(source)
        except jinja2.TemplateError as exc:
            raise TemplateError(f"invalid template {source!r}: {exc}") from exc

    def render(self, **context: Any) -> str:
        try:
            return self._template.render(**context)
        except jinja2.TemplateError as exc:
            raise TemplateError(str(exc)) from exc


def render_json(template: Template, **context: Any) -> Any:
    """Render and parse as JSON; a template that renders plain text gives the text back."""
    text = template.render(**context)
    try:
        return json.loads(text)
    except ValueError:
        return text
