"""The logins and body cap of tests/conftest.py's locked-down shared server `auth_app`, for the tests on it."""

AUTH_PAGE_LOGIN = ("page-user", "page-pw-2718")  # auth_app's --gradio-auth
AUTH_API_LOGIN = ("api-user", "api-pw-1729")  # auth_app's --api-auth
AUTH_MAX_REQUEST_BYTES = 1024 * 1024  # auth_app's setting max_request_bytes (read at start)
