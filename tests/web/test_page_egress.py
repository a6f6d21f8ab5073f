"""The egress pane in headless Chromium shows every record of a log longer than one page."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from .test_page import CHROMEDRIVER, CHROMIUM

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium "
    "chromium-driver; .ci/run installs them)",
)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402

from .test_page import browser, find, open_page, shot, wait_for  # noqa: E402, F401

#: Two pages and a bit (a page is 200 records).
RECORDS = 450


@pytest.fixture
def long_log_url() -> Iterator[str]:
    """The web app over an audit log of :data:`RECORDS` records, served on 127.0.0.1."""
    from specsteer.apps._assistants import CloudChoice, build_assistant
    from specsteer.apps.web import Access, ChatSession, create_app
    from specsteer.cloud_adapter import BackgroundServer

    session = ChatSession(build_assistant(cloud=CloudChoice(), tiny=True, user_id="m"), "tiny")
    for n in range(RECORDS):
        payload = json.dumps({"n": n}).encode()
        session.audit_log.append(destination="test", payload=payload, payload_type="t")
    access = Access()
    server = BackgroundServer(create_app(session, access=access))
    access.hosts.add(server.url.removeprefix("http://"))
    with server:
        yield server.url + "/"


def test_the_egress_pane_shows_every_record_of_a_long_log(
    browser: WebDriver,  # noqa: F811
    long_log_url: str,
    shot: Callable[[str], None],  # noqa: F811
) -> None:
    open_page(browser, long_log_url)
    find(browser, "#tab-egress").click()
    items = "#sent > li"
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, items)) == RECORDS, "all")
    seqs = [int(x.get_attribute("data-seq")) for x in browser.find_elements(By.CSS_SELECTOR, items)]
    assert seqs == list(range(RECORDS, 0, -1))  # newest on top, none missing
    shot("1-every-record")
