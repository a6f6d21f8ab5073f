"""The code in docs/privacy.md runs, so it cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "privacy.md"


def test_privacy_doc_code_blocks_run(capsys: object) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 3
    namespace: dict[str, object] = {"__name__": "privacy_doc"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name}:block{i + 1}", "exec"), namespace)
