"""Messages the domain gives to people: English templates, translated by the web layer."""

from __future__ import annotations


def translatable(message: str) -> str:
    """Mark an English message (with ``%(name)s`` slots) for the translation catalog."""
    return message


class Message(str):
    """An English sentence that keeps its template and values, so the web layer can say it
    in the reader's language (``web.inputs.say``); as a ``str`` it is the English."""

    template: str
    params: dict[str, object]

    def __new__(cls, template: str, **params: object) -> Message:
        message = super().__new__(cls, template % params if params else template)
        message.template = template
        message.params = params
        return message


class ExplainedError(ValueError):
    """A refusal that a person will read: ``template`` and ``params`` feed gettext;
    ``str(exc)`` is the English sentence."""

    def __init__(self, template: str, **params: object) -> None:
        super().__init__(template % params if params else template)
        self.template = template
        self.params = params
