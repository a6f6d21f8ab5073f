"""``load_examples``: LaMP-style lines read right, and every bad line named with its fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specsteer import InvalidInputError
from specsteer._eval import EvalExample, load_examples

GOOD = {"user_id": "u1", "input": "Plan my weekend.", "profile": ["I hike."], "output": "Hike!"}


def line(**changes: object) -> str:
    """A good line with some fields changed (a value of ``...`` removes the field)."""
    row = {**GOOD, **changes}
    return json.dumps({k: v for k, v in row.items() if v is not ...})


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "set.jsonl"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


BAD_LINES = [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (line(user_id=...), "missing field 'user_id'"),
    (line(input=...), "missing field 'input'"),
    (line(output=...), "missing field 'output'"),
    (line(profile=...), "missing field 'profile'"),
    (line(profile=[]), "'profile' is empty"),
    (line(profile="I hike."), "'profile' must be a list"),
    (line(profile=["ok", 3]), "profile item 1"),
    (line(profile=[{"title": "no text"}]), "profile item 0"),
    (line(profile=["ok", {"text": "  "}]), "the text is empty"),
    (line(input="   "), "'input' is empty"),
    (line(output=""), "'output' is empty"),
    (line(input=3), "'input' must be a string"),
    (line(output=["a"]), "'output' must be a string"),
    (line(user_id=["u"]), "'user_id' must be a non-empty string or an integer"),
    (line(user_id=True), "'user_id' must be"),
    (line(user_id=""), "'user_id' must be"),
    (line(id=1.5), "'id' must be"),
    (line(facts="Porto"), "'facts' must be a list"),
    (line(facts=["Porto", ""]), "'facts' must be a list of non-empty strings"),
    (line(writer=["Maya"]), "'writer' must be a string"),
    (line(recipient=7), "'recipient' must be a string"),
    (line(id="u1-a"), "repeats an earlier line"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_LINES)
def test_a_bad_line_is_named(tmp_path: Path, bad: str, message: str) -> None:
    # The bad line is line 3: after a good line and a blank line, so numbering counts blanks.
    path = write(tmp_path, f"{line(id='u1-a')}\n\n{bad}\n{line(id='u1-z')}\n")
    with pytest.raises(InvalidInputError) as info:
        load_examples(path)
    text = str(info.value)
    assert f"{path}, line 3" in text
    assert message in text


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "holds no examples"), ("\n  \n", "holds no examples"), (b"\xff\xfe{}", "cannot read")],
)
def test_a_bad_file_is_named(tmp_path: Path, content: str | bytes, message: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(InvalidInputError, match=message) as info:
        load_examples(path)
    assert str(path) in str(info.value)


def test_a_missing_file_or_a_folder_is_named(tmp_path: Path) -> None:
    for path in (tmp_path / "nope.jsonl", tmp_path):
        with pytest.raises(InvalidInputError, match="cannot read the dataset") as info:
            load_examples(path)
        assert str(path) in str(info.value)


def test_lamp_items_and_defaults(tmp_path: Path) -> None:
    lamp = {
        "user_id": 310,
        "input": "Write a title for this abstract.",
        "profile": [
            {"id": "p1", "title": "Deep nets", "text": "We train deep nets.", "date": "2019"},
            {"id": "p2", "text": "Untitled note."},
            "A plain string item.",
        ],
        "output": "A title.",
    }
    named = line(id=7, facts=["hike"], writer=" Maya ", recipient="Lena")
    path = write(tmp_path, "\n" + json.dumps(lamp) + "\n" + named + "\n")
    first, second = load_examples(path)
    assert first == EvalExample(
        id="2",  # the line number
        user_id="310",
        input="Write a title for this abstract.",
        profile=("Deep nets: We train deep nets.", "Untitled note.", "A plain string item."),
        output="A title.",
        facts=(),
    )
    assert second.id == "7"
    assert second.facts == ("hike",)
    assert (first.writer, first.recipient) == ("", "")
    assert (second.writer, second.recipient) == ("Maya", "Lena")
