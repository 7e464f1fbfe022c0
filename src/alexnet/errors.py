"""The error every layer raises for a bad setting: its message starts with the config key."""


class ConfigError(ValueError):
    """A config problem, with the offending key (``data.root: ...``) in its message."""
