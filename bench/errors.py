"""The harness's error types: each carries one message that names what was wrong and what was expected."""


class BenchError(Exception):
    """Base class for every error the harness reports to the user as a single clear line."""


class DataError(BenchError):
    """A dataset path is missing or a source file is not in the expected published format."""


class ConfigError(BenchError):
    """A suite, method parameter or CLI option has a bad key, type or value."""


class MethodError(BenchError):
    """A method broke its contract with the harness (returned something other than what it must)."""
