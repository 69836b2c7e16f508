"""The login gate: the router calls `gate()` before any page (or the sidebar) renders.

When it asks for a login:
- a password is configured (RECSCOPE_PASSWORD, or RECSCOPE_PASSWORD_FILE naming a file that
  holds it; `make share` needs one of them): every visitor must type it first;
- the server listens on a non-loopback address and no password is configured: nobody gets
  in, and the page says how to set one.
On 127.0.0.1 without a password the app opens directly, as before.

Why a small gate of our own rather than a library: the team shares one analysis box and one
secret; streamlit-authenticator (0.4.2) wants a YAML file of users with bcrypt hashes, a cookie
signing key, and six more dependencies (bcrypt, captcha, cryptography,
extra-streamlit-components, PyJWT, PyYAML); Streamlit's own `st.login` needs an OpenID
Connect identity provider, which a lab box usually does not have. This gate is one shared
password kept outside the repository, compared with `hmac.compare_digest` (constant time),
with a one-second pause after a wrong attempt. A login lasts for the browser session (the
tab); a reload asks again — nothing is stored in a cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import time
from pathlib import Path

import streamlit as st

from core.errors import RecScopeError
from dashboard.text import md

PASSWORD_ENV = "RECSCOPE_PASSWORD"
PASSWORD_FILE_ENV = "RECSCOPE_PASSWORD_FILE"
WRONG = "That password is wrong; type the password the person who started the server gave you."
NO_PASSWORD = (
    "This RecScope server listens on {address}, which other machines can reach, but no "
    "password is set, so it shows nothing. Stop it and start it again with a password: "
    "`RECSCOPE_PASSWORD_FILE=/path/to/secret make share` (or set RECSCOPE_PASSWORD), or "
    "serve this machine only with `make demo`."
)
WRONG_PAUSE_S = 1.0  # a wrong attempt waits this long: guessing gets slow, typing does not
_STATE = "_recscope_login"  # session_state: a digest of the password this session typed


def configured_password() -> str | None:
    """The password visitors must type, or None when none is set.

    RECSCOPE_PASSWORD_FILE (a file holding the password, trailing newline ignored) wins over
    RECSCOPE_PASSWORD. A named file that is missing or empty is an error, not "no password".
    """
    if path := os.environ.get(PASSWORD_FILE_ENV):
        try:
            secret = Path(path).expanduser().read_text(encoding="utf-8").strip("\r\n")
        except (OSError, UnicodeDecodeError) as err:
            raise RecScopeError(
                f"The password file {PASSWORD_FILE_ENV}='{path}' cannot be read "
                f"({type(err).__name__}); point it at a readable UTF-8 text file."
            ) from err
        if not secret:
            raise RecScopeError(
                f"The password file {PASSWORD_FILE_ENV}='{path}' is empty; write the password "
                "into it."
            )
        return secret
    return os.environ.get(PASSWORD_ENV) or None


def is_loopback(address: str | None) -> bool:
    """True when `address` (Streamlit's server.address) is reachable from this machine only.

    An empty address means every interface (Streamlit's default), so it is not loopback.
    """
    host = (address or "").strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def password_matches(typed: str, secret: str) -> bool:
    """Constant-time comparison of what was typed with the secret."""
    return hmac.compare_digest(typed.encode("utf-8"), secret.encode("utf-8"))


def gate() -> bool:
    """True when this session may see the app; otherwise draws the login (or the "set a
    password") page and returns False, and the router renders nothing else."""
    address = st.get_option("server.address")
    try:
        secret = configured_password()
    except RecScopeError as err:
        st.title("RecScope")
        st.error(md(err))
        return False
    if secret is None:
        if is_loopback(address):
            return True
        st.title("RecScope")
        st.error(NO_PASSWORD.format(address=address or "every network interface"))
        return False
    if hmac.compare_digest(st.session_state.get(_STATE, ""), _digest(secret)):
        with st.sidebar:
            st.button("Log out", key="_recscope_logout", on_click=_logout)
        return True
    _login_form(secret)
    return False


def _login_form(secret: str) -> None:
    st.title("RecScope")
    st.write("This RecScope server is shared. Type its password to open it.")
    with st.form("login"):
        typed = st.text_input("Password", type="password", key="_recscope_password")
        sent = st.form_submit_button("Log in", type="primary")
    if not sent:
        return
    if password_matches(typed, secret):
        st.session_state[_STATE] = _digest(secret)
        st.rerun()
    time.sleep(WRONG_PAUSE_S)
    st.error(WRONG)


def _logout() -> None:
    st.session_state.pop(_STATE, None)


def _digest(secret: str) -> str:
    """What a logged-in session keeps: a changed password logs every session out."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
