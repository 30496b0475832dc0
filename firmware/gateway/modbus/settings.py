# Fill a settings dict from a module's SCHEMA = {key: (default, lo, hi)} and check it,
# with the one validator (gateway.schema, docs/conventions.md). Unknown keys are errors
# here (a typo must not silently use a default). Runs once at start-up.
from gateway.schema import ConfigError, section  # noqa: F401 - ConfigError re-exported


def settings(schema, cfg, name):
    """The complete, checked settings of section `name`; ConfigError names the key."""
    return section(name, schema, cfg, strict=True)
