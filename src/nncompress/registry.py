"""Names resolve through registries (dicts, or tuples of valid names), and one
lookup gives every "unknown X" error: what was asked for, the closest valid
name, and the whole list."""

import difflib


def suggest(name, valid) -> str:
    """' (did you mean 'x'?)' for the closest valid name, or ''."""
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown(what, name, valid, valid_label="valid") -> str:
    """"unknown WHAT 'name' (did you mean 'x'?); valid: a, b, c"."""
    return f"unknown {what} '{name}'{suggest(name, valid)}; {valid_label}: {', '.join(map(str, valid))}"


def lookup(registry, name, what, error=ValueError):
    """registry[name] for a dict, or name itself if it is in a tuple of
    names; otherwise raise ``error`` with the ``unknown`` message."""
    try:
        if isinstance(registry, dict):
            return registry[name]
        if name in registry:
            return name
    except (KeyError, TypeError):
        pass
    raise error(unknown(what, name, registry))
