"""The admin as its users meet it over HTTP: a `requests` session against the live server.

No force_login here: the session logs in through the real login form, CSRF token
and all, so a broken authentication backend or form fails these tests.
"""

import re

import requests

from core.admin_site import LOGIN_REFUSED

LOGIN_PATH = "/admin/login/"
LOGOUT_PATH = "/admin/logout/"
WRONG_LOGIN_MESSAGE = LOGIN_REFUSED
_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def csrf_token_of(page: str) -> str:
    found = _CSRF_INPUT.search(page)
    assert found, "the page has no CSRF token"
    return found.group(1)


class AdminSession:
    """A browser-like HTTP session: cookies, CSRF tokens and Referer as a browser sends them."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}{path}"

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.url(path), timeout=30, **kwargs)

    def post_form(self, path: str, data: dict, *, form_page: str | None = None, **kwargs) -> requests.Response:
        """POST `data` as the form on `path` would, with the CSRF token of the page the form is on."""
        page = form_page if form_page is not None else self.get(path).text
        fields = {"csrfmiddlewaretoken": csrf_token_of(page), **data}
        headers = {"Referer": self.url(path)}
        return self.http.post(self.url(path), data=fields, headers=headers, timeout=30, **kwargs)

    def login(self, email: str, password: str, *, next_path: str = "/admin/") -> requests.Response:
        return self.post_form(
            f"{LOGIN_PATH}?next={next_path}", {"username": email, "password": password, "next": next_path}
        )

    def logout(self) -> requests.Response:
        # Django's logout is a POST form in the admin's header.
        return self.post_form(LOGOUT_PATH, {}, form_page=self.get("/admin/").text)
