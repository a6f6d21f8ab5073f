"""The web page in headless Chromium (Debian's ``chromium`` and ``chromium-driver``), on tiny models.

Each step saves a screenshot under ``.artifacts/web/`` (or ``$SPECSTEER_WEB_ARTIFACTS``); the
path is printed, and the folder is ignored by git.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium "
    "chromium-driver; .ci/run installs them)",
)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ARTIFACTS = Path(
    os.environ.get(
        "SPECSTEER_WEB_ARTIFACTS", Path(__file__).resolve().parents[2] / ".artifacts/web"
    )
)
#: Explicit waits only, generous: the suite shares small machines.
WAIT_S = 120
USER = "maya"
MEMORY = "My sister Lena Okafor lives in Lisbon and loves jazz on Sunday evenings."
QUESTION = "what does my sister like ?"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture
def page_url() -> Iterator[str]:
    """The web app on tiny models, cloud in process, served from a thread on 127.0.0.1."""
    from specsteer.apps._assistants import CloudChoice, build_assistant
    from specsteer.apps.web import Access, ChatSession, create_app
    from specsteer.cloud_adapter import BackgroundServer

    assistant = build_assistant(cloud=CloudChoice(), tiny=True, user_id=USER)
    access = Access()
    server = BackgroundServer(create_app(ChatSession(assistant, "tiny test models"), access=access))
    access.hosts.add(server.url.removeprefix("http://"))
    with server:
        yield server.url + "/"


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile, driven by the system chromedriver."""
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium must never fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # to see CSP violations
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shot(browser: WebDriver, request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Save a screenshot of the page for a named step."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def save(step: str) -> None:
        path = ARTIFACTS / f"{request.node.name}-{step}.png"
        browser.save_screenshot(str(path))
        print(f"screenshot: {path}")

    return save


def wait_for(browser: WebDriver, check: Callable[[WebDriver], object], what: str) -> None:
    WebDriverWait(browser, WAIT_S).until(check, message=f"waited {WAIT_S} s for {what}")


def find(browser: WebDriver, css: str) -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, css)


def open_page(browser: WebDriver, url: str) -> None:
    browser.get(url)
    wait_for(browser, lambda d: find(d, "body").get_attribute("data-ready") == "true", "the page")


def alert_text(browser: WebDriver) -> str:
    box = find(browser, "#alert")
    return box.text if box.is_displayed() else ""


def test_memory_chat_egress_and_forget(
    browser: WebDriver, page_url: str, shot: Callable[[str], None]
) -> None:
    open_page(browser, page_url)
    shot("1-opened")

    find(browser, "#memory-text").send_keys(MEMORY)
    find(browser, "#memory-form button[type=submit]").click()
    wait_for(browser, lambda d: MEMORY in find(d, "#memories").text, "the memory in the list")
    assert find(browser, "#memory-count").text == f"1 memory of {USER}"
    # The persona pane shows who the memory names, marked as read from it.
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#people li"), "the persona")
    person = find(browser, "#people li")
    assert person.find_element(By.CSS_SELECTOR, ".name").get_attribute("value") == "Lena Okafor"
    assert person.find_element(By.CSS_SELECTOR, ".relation").get_attribute("value") == "sister"
    assert "inferred" in person.text
    find(browser, "#persona-name").send_keys("Maya")
    find(browser, "#persona-form button[type=submit]").click()
    wait_for(
        browser, lambda d: find(d, "#persona-name-source").text == "set by you", "the saved name"
    )
    assert "inferred" in find(browser, "#people li").text  # left alone, still inferred
    shot("2-memory-added")

    find(browser, "#message").send_keys(QUESTION, Keys.ENTER)
    answer = ".turn.assistant .answer"
    wait_for(browser, lambda d: find(d, answer).get_attribute("data-done") == "true", "the answer")
    streamed = find(browser, answer)
    kinds = {s.get_attribute("data-kind") for s in streamed.find_elements(By.CSS_SELECTOR, ".tok")}
    assert int(streamed.get_attribute("data-chunks") or 0) >= 2, "the answer came in one piece"
    assert kinds and kinds <= {"accepted", "rejected", "recovered", "local"}
    assert streamed.text.strip()
    assert "round trips" in find(browser, ".turn.assistant figure.chart figcaption").text
    assert find(browser, "#message").get_attribute("value") == ""
    shot("3-answer-streamed")

    find(browser, "#tab-egress").click()
    wait_for(
        browser, lambda d: find(d, "#audit-status").get_attribute("data-ok") == "true", "audit"
    )
    assert "HMAC chain intact" in find(browser, "#audit-status").text
    payloads = [p.text for p in browser.find_elements(By.CSS_SELECTOR, "#sent pre.payload")]
    assert payloads and all('"request_id"' in p for p in payloads)
    assert QUESTION in payloads[-1], "the public question is what the cloud sees"
    sent = "\n".join(payloads)
    for word in ("Lena", "Okafor", "Lisbon", "jazz", MEMORY):
        assert word not in sent, f"memory text {word!r} left the device"
    assert MEMORY in find(browser, "#kept").text, "the memory steered the answer on the device"
    assert "Written as Maya" in find(browser, "#kept").text
    shot("4-egress")

    find(browser, "#tab-memory").click()
    find(browser, "#memories li button").click()  # Edit
    field = find(browser, "#memories li input")
    field.send_keys(" She plays piano.", Keys.ENTER)
    wait_for(browser, lambda d: "She plays piano." in find(d, "#memories").text, "the edit")
    # The chat could quote the memory's old text: it is cleared, here and on the server.
    assert "was cleared" in find(browser, "#history-note").text
    assert browser.find_elements(By.CSS_SELECTOR, ".turn.assistant") == []
    find(browser, "#search-q").send_keys("piano", Keys.ENTER)
    wait_for(browser, lambda d: find(d, "#memory-count").text.startswith("1 match of"), "search")
    shot("5-edited-and-searched")

    find(browser, "#forget summary").click()
    find(browser, "#forget-user").send_keys(USER)
    find(browser, "#forget-form button[type=submit]").click()
    wait_for(browser, lambda d: find(d, "#memory-count").text == f"0 memories of {USER}", "forget")
    assert browser.find_elements(By.CSS_SELECTOR, "#memories li") == []
    assert alert_text(browser) == ""
    shot("6-forgotten")
    # Everything above ran under the app's Content-Security-Policy, with nothing refused.
    console = [e["message"] for e in browser.get_log("browser")]
    assert not [m for m in console if "Content Security Policy" in m or "Refused" in m], console


def test_bad_input_is_a_clear_message_and_nothing_is_lost(
    browser: WebDriver, page_url: str, shot: Callable[[str], None]
) -> None:
    browser.set_window_size(390, 844)  # a phone
    open_page(browser, page_url)
    width = browser.execute_script("return [document.documentElement.scrollWidth, innerWidth]")
    assert width[0] <= width[1], "the page scrolls sideways on a narrow screen"

    find(browser, "#max-tokens").clear()
    find(browser, "#max-tokens").send_keys("lots")
    find(browser, "#message").send_keys("plan my saturday", Keys.ENTER)
    wait_for(browser, alert_text, "the error message")
    assert alert_text(browser).startswith("answer length (tokens):")
    assert "Traceback" not in browser.page_source
    assert find(browser, "#message").get_attribute("value") == "plan my saturday"
    assert browser.find_elements(By.CSS_SELECTOR, "#conversation li") == []
    shot("1-bad-length")

    find(browser, "#memory-form button[type=submit]").click()
    wait_for(browser, lambda d: alert_text(d).startswith("memory:"), "the empty-memory message")
    assert "empty" in alert_text(browser)
    shot("2-empty-memory")

    tab = find(browser, "#tab-memory")
    tab.send_keys(Keys.ARROW_RIGHT)  # tabs work from the keyboard
    wait_for(browser, lambda d: find(d, "#egress-pane").is_displayed(), "the egress pane")
    assert browser.switch_to.active_element == find(browser, "#tab-egress")
    shot("3-keyboard-tabs")
