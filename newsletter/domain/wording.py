"""Messages the domain gives to people: English templates, translated by the web layer."""

from __future__ import annotations


def translatable(message: str) -> str:
    """Mark an English message (with ``%(name)s`` slots) for the translation catalog."""
    return message


class ExplainedError(ValueError):
    """A refusal that a person will read: ``template`` and ``params`` feed gettext;
    ``str(exc)`` is the English sentence."""

    def __init__(self, template: str, **params: object) -> None:
        super().__init__(template % params if params else template)
        self.template = template
        self.params = params
