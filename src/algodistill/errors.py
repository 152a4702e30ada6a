"""User-facing errors: one line that names the field and the fix, exit code 2.

`UserError` deliberately does not derive from ValueError: tyro turns ValueErrors raised while it
builds a config into a multi-line box, whereas a UserError raised from a config's `__post_init__`
reaches `algodistill.cli.main`, which prints it on one line and exits with code 2.
"""


class UserError(Exception):
    """Bad input from the user (config value, path, file). The CLI prints it on one line and exits 2."""
