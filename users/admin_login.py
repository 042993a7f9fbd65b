"""The admin's login form, on the same throttles as POST /auth/token (users.throttles).

An attempt is counted before its password is checked and given back only when the
login is let in, so a right password of an account that may not use the console
(an operator, a viewer) costs an attempt like a wrong one and tells nothing.
"""

from django.core.exceptions import ValidationError

from core.admin_site import ConsoleLoginForm
from core.caller import caller_of
from users.throttles import LoginThrottled, login_attempt_begin, login_attempt_succeeded

LOGIN_THROTTLED = "Too many failed login attempts. Try again in {seconds} seconds."


class ThrottledConsoleLoginForm(ConsoleLoginForm):
    def clean(self):
        email, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if email is None or not password:
            return super().clean()
        try:
            attempt = login_attempt_begin(email=email, by=caller_of(self.request))
        except LoginThrottled as exc:
            raise ValidationError(LOGIN_THROTTLED.format(seconds=exc.wait_seconds), code="throttled") from None
        cleaned = super().clean()  # a refusal raises here, and the attempt stays counted
        login_attempt_succeeded(attempt)
        return cleaned
