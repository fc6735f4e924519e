"""The error a user can fix: bad input, named precisely.

Raise `UserError("data.path: gs://b/x/index.json does not exist")` (one line naming the file,
field or parameter and what was expected). The `ouro` CLI prints it as
`ouro <cmd>: error: <message>` and exits 2, without a traceback (`--debug` shows one);
anything else is a bug and keeps its traceback. `ouro.config.ConfigError` is one.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user; the message is one line naming what is wrong."""
