"""The persona routes of the web app: who the user is when they write, shown with what was read
from their memories, and edited from the memory pane.

``GET /api/persona`` returns the persona in use: each value with its source (``set`` or
``inferred``, with the memory it was read from). ``PUT /api/persona`` replaces what the user set
(their name, sign-off, people, and the inferred people they dismissed).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from specsteer._errors import UsageError
from specsteer.apps.web._chat import ChatSession
from specsteer.apps.web._text import check_text
from specsteer.memory import Person, Persona
from specsteer.memory._persona import name_key

__all__ = ["add_persona_routes"]


def _optional_text(value: str) -> str:
    """Empty or spaces leave the value unset; anything else is checked like any text."""
    return value if not value.strip() else check_text(value)


#: A text the user must write (no NUL, not blank once invisible characters are left out).
_Text = Annotated[str, AfterValidator(check_text)]
#: A text the user may leave empty, to leave it unset.
_Optional = Annotated[str, AfterValidator(_optional_text)]


class PersonBody(BaseModel):
    """Someone in the user's life."""

    model_config = ConfigDict(extra="forbid")

    name: _Text = Field(max_length=100, description="Their name.")
    relation: _Text = Field(max_length=40, description="What they are to the user ('sister').")


class PersonaBody(BaseModel):
    """What the user sets about themselves; what they leave out is read from their memories."""

    model_config = ConfigDict(extra="forbid")

    name: _Optional = Field(default="", max_length=100, description="The name they write as.")
    sign_off: _Optional = Field(default="", max_length=200, description="How they end a message.")
    people: list[PersonBody] = Field(default_factory=list, max_length=100)
    hidden: list[_Text] = Field(
        default_factory=list, max_length=100, description="Inferred people they dismissed."
    )

    @field_validator("people")
    @classmethod
    def _one_each(cls, people: list[PersonBody]) -> list[PersonBody]:
        """A persona holds one person per name: two of one name would keep only the last."""
        seen: dict[str, str] = {}
        for person in people:
            key = name_key(person.name)
            if key in seen:
                raise ValueError(
                    f"two people are called {person.name!r} ({seen[key]} and {person.relation}); "
                    "a persona keeps one person per name, so tell them apart (e.g. 'Ana S.')"
                )
            seen[key] = person.relation
        return people


def add_persona_routes(app: FastAPI, session: ChatSession) -> None:
    """Serve ``/api/persona`` (read and replace) for the session's user."""

    def store() -> tuple[Any, str]:
        a = session.assistant
        if a.memory is None or a.user_id is None:
            raise UsageError("this app runs without a memory store")
        return a.memory, a.user_id

    @app.get("/api/persona")
    def persona() -> dict[str, Any]:
        mem, user = store()
        return {"user": user, **mem.persona_view(user).to_json()}

    @app.put("/api/persona")
    def set_persona(body: PersonaBody) -> dict[str, Any]:
        mem, user = store()
        people = tuple(Person(p.name, p.relation) for p in body.people)
        mem.set_persona(user, Persona(body.name, body.sign_off, people, tuple(body.hidden)))
        return {"user": user, **mem.persona_view(user).to_json()}
