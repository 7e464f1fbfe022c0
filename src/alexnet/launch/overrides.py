"""The command line's overrides, checked before Hydra parses them.

Hydra's override grammar takes characters outside ASCII only inside quotes, so a path such as
``data.root=/data/données`` ends in Hydra's ``LexerNoViableAltException``, which does not say
so. Such an override is named here, in one line, with the quoting that works.
"""

import sys

from alexnet.exit_codes import ExitCode

LIST_SYNTAX = "[]{}(),'\""


def check_overrides(argv: list[str]) -> None:
    """Exit 2 with ``config error: <key>: ...`` for an override whose non-ASCII value Hydra cannot read unquoted."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    from alexnet.errors import traceback_wanted

    parser = None
    for arg in argv:
        key, equals, value = arg.partition("=")
        # Only overrides (key=value): a flag's value (-cd /données/conf) is Hydra's to read.
        if arg.startswith("-") or not equals or arg.isascii() or not key.isascii():
            continue
        parser = parser or OverridesParser.create()
        try:
            parser.parse_overrides([arg])
        except OverrideParseException:
            if traceback_wanted():
                raise
            quoted = (
                f"'{key}=\"{value}\"'"
                if not any(c in value for c in LIST_SYNTAX)
                else "each such element in quotes (tags='[\"été\"]')"
            )
            print(
                f"config error: {key.lstrip('+~')}: {value!r} has characters outside ASCII, which Hydra's override "
                f"grammar takes only inside quotes: write {quoted}",
                file=sys.stderr,
                flush=True,
            )
            sys.exit(ExitCode.CONFIG_ERROR)
