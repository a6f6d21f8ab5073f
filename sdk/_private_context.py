"""The device's private context: who is writing, to whom, and the memories that bear on the
request, laid out for the device prompt.

Only the device sees it (:mod:`specsteer._prompt` puts it in the private view; the public view
the cloud gets is unchanged), and every line of it is in the egress guard's index.
"""

from __future__ import annotations

from dataclasses import dataclass

from specsteer.memory import Person

__all__ = ["PrivateContext"]


@dataclass(frozen=True)
class PrivateContext:
    """What the device model is told beyond the request.

    Attributes:
        writer: The user's name ("" when unknown).
        sign_off: How the user ends a message ("" when unknown).
        recipients: The people the request names by relation ("my sister" -> Lena).
        memories: The user's memories that bear on the request, most relevant first.
        writing: Whether the user asks for a text to send (a message, an email, a review), which
            the device writes as the user, or for an answer to them.
    """

    writer: str = ""
    sign_off: str = ""
    recipients: tuple[Person, ...] = ()
    memories: tuple[str, ...] = ()
    writing: bool = False

    @property
    def empty(self) -> bool:
        """Whether there is nothing private to tell the device."""
        return not (self.writer or self.sign_off or self.recipients or self.memories)

    def render(self) -> str:
        """The block for the device's system message ("" when empty).

        A text to send is written as the user, in the first person, to the people the request
        names, with the user's sign-off; an answer is addressed to the user. Memories are the
        user's own first-person notes, so the block says whose "I" they speak in.
        """
        if self.empty:
            return ""
        who = self.writer or "the user"
        lines = [self._writing_lines(who) if self.writing else self._answer_line(who)]
        if self.memories:
            lines.append(f'What {who} wrote down ("I" and "my" are {who}):')
            lines += [f"- {' '.join(m.split())}" for m in self.memories]
        return "\n".join(line for line in lines if line)

    def _writing_lines(self, who: str) -> str:
        lines = [
            f'You write for {who}: the text {who} asks for, as {who}, in the first person ("I" '
            f"is {who}), ready to send. Write only that text."
        ]
        sign = f'; sign it "{self.sign_off}"' if self.sign_off else ""
        if self.recipients:
            people = " and ".join(f"{p.name}, {who}'s {p.relation}" for p in self.recipients)
            lines.append(f"It is to {people}. Greet {self.recipients[0].name}{sign}.")
        elif self.sign_off:
            lines.append(f'If it is a message, sign it "{self.sign_off}".')
        return "\n".join(lines)

    @staticmethod
    def _answer_line(who: str) -> str:
        return f"You are talking with {who}. Answer {who} directly, without a greeting."

    def request(self, query: str) -> str:
        """The user's request as the device reads it: a text to send is asked for in the user's
        name ('Maya asks: "..." Write that text now, as Maya.'), which the code-tuned device
        model writes where it refuses the bare request; an answer's request is unchanged."""
        if not self.writing:
            return query
        who = self.writer or "The user"
        as_who = self.writer or "them"
        return f'{who} asks: "{query}"\nWrite that text now, as {as_who}.'

    def texts(self) -> list[str]:
        """Every private piece of text in the context (for the egress guard's index)."""
        out = [self.render(), self.writer, self.sign_off, *self.memories]
        out += [p.name for p in self.recipients]
        return [t for t in out if t]
