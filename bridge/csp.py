"""A strict Content-Security-Policy for the pages of our own (dashboard, sandbox).

They show text written by agents. It is always inserted as text, never as markup; the policy is the second line of
defence: no inline script, no script from elsewhere, no plugin, no framing, so even a slip could not run
injected code.
"""

from __future__ import annotations

from functools import wraps

POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def strict_csp(view):
    """Decorate a view so that its responses carry the policy."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.headers.setdefault("Content-Security-Policy", POLICY)
        return response

    return wrapper
