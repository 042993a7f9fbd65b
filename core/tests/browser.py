"""Headless Chromium driven by Selenium, for tests of the admin as a person uses it.

The driver is Debian's `chromium` with its `/usr/bin/chromedriver` (`.ci/run`
installs both); Selenium never downloads a browser or driver here. A failing
test leaves a screenshot and the page's HTML in `var/browser-screenshots/`
(git-ignored).
"""

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "browser-screenshots"
WAIT_SECONDS = 10


def browser_available() -> bool:
    return bool(shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER))


def start_driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not browser_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        "--window-size=1280,1000",
        "--password-store=basic",
    ):
        options.add_argument(argument)
    # The browser's own password manager and breach check would call out; keep it off.
    options.add_experimental_option(
        "prefs", {"credentials_enable_service": False, "profile.password_manager_enabled": False}
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


def save_failure_artefacts(driver, test_name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in test_name)[:150]
    driver.save_screenshot(str(SCREENSHOTS / f"{stem}.png"))
    (SCREENSHOTS / f"{stem}.html").write_text(driver.page_source)
    return SCREENSHOTS / f"{stem}.png"


class AdminBrowser:
    """A person at the admin: opens pages, fills forms, clicks buttons, reads what is shown."""

    def __init__(self, driver, base_url: str):
        self.driver = driver
        self.base_url = base_url.rstrip("/")

    # --- reading the page ---------------------------------------------------------------
    @property
    def path(self) -> str:
        return self.driver.current_url.removeprefix(self.base_url)

    @property
    def text(self) -> str:
        return self.driver.find_element("tag name", "body").text

    @property
    def title(self) -> str:
        return self.driver.title

    def messages(self) -> list[str]:
        return [element.text for element in self.driver.find_elements("css selector", "ul.messagelist li")]

    def errors(self) -> list[str]:
        selector = "ul.errorlist li, p.errornote"
        return [element.text for element in self.driver.find_elements("css selector", selector)]

    def find(self, selector: str):
        return self.driver.find_element("css selector", selector)

    def find_all(self, selector: str):
        return self.driver.find_elements("css selector", selector)

    # --- acting on it -------------------------------------------------------------------
    def open(self, path: str) -> None:
        self.driver.get(f"{self.base_url}{path}")

    def reload(self) -> None:
        self.driver.refresh()

    def fill(self, name: str, value: str) -> None:
        field = self.find(f'[name="{name}"]')
        field.clear()
        field.send_keys(value)

    def select(self, name: str, visible_text: str) -> None:
        from selenium.webdriver.support.select import Select

        Select(self.find(f'select[name="{name}"]')).select_by_visible_text(visible_text)

    def check(self, name: str, value: str, checked: bool = True) -> None:
        box = self.find(f'input[name="{name}"][value="{value}"]')
        if box.is_selected() != checked:
            box.click()

    def click(self, selector: str) -> None:
        self.click_and_wait(lambda: self.find(selector).click())

    def click_link(self, text: str) -> None:
        self.click_and_wait(lambda: self.driver.find_element("link text", text).click())

    def submit(self, name: str = "_save") -> None:
        """Press a submit button by its name (`_save`, `_continue`, `post`...) or, failing that, its value."""
        buttons = self.find_all(f'[type="submit"][name="{name}"]') or self.find_all(f'[type="submit"][value="{name}"]')
        assert buttons, f"no submit button {name!r} on {self.path}"
        self.click_and_wait(buttons[0].click)

    def click_and_wait(self, action) -> None:
        """Do something that loads a new page, and wait until the new page is there."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.wait import WebDriverWait

        old_page = self.find("html")
        action()

        def old_page_gone(_driver) -> bool:
            try:
                old_page.is_enabled()
            except WebDriverException:  # stale, or "node does not belong to the document": gone either way
                return True
            return False

        WebDriverWait(self.driver, WAIT_SECONDS).until(old_page_gone)
        WebDriverWait(self.driver, WAIT_SECONDS).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )

    # --- the admin's own steps -------------------------------------------------------------
    def log_in(self, email: str, password: str) -> None:
        self.open("/admin/login/?next=/admin/")
        self.fill("username", email)
        self.fill("password", password)
        self.click('#login-form [type="submit"]')

    def log_out(self) -> None:
        self.click("#logout-form button")
