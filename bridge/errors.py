"""Every error bridge raises, in one tree.

::

    BridgeError
    ├── ConfigurationError          a setting, URL or option is wrong
    │   ├── UnknownBackendError     no backend serves this URL scheme
    │   └── MissingDependencyError  the backend's extra is not installed
    ├── UnknownQueueError           no worker or setting knows this queue
    ├── InvalidArgumentError        a bad argument value (also a ValueError)
    ├── PayloadError                data the codec cannot encode or decode
    ├── UnsupportedOperationError   the backend cannot do this (capabilities)
    └── BackendError                the backend failed; driver error chained
        └── BackendUnavailableError the server cannot be reached

Driver exceptions never escape the facade: backends wrap them with
``raise BackendError(...) from exc`` so callers catch one type.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of every error bridge raises."""


class ConfigurationError(BridgeError):
    """A setting, URL or backend option is wrong."""


class UnknownBackendError(ConfigurationError):
    """No backend is registered for the URL's scheme."""


class MissingDependencyError(ConfigurationError):
    """The driver a backend needs is not installed; the message names the extra."""


class UnknownQueueError(BridgeError):
    """No registered worker, setting or stored item knows this queue name."""


class InvalidArgumentError(BridgeError, ValueError):
    """An argument has a value the API refuses, such as a negative delay."""


class PayloadError(BridgeError, TypeError):
    """Data the codec cannot encode (refused before anything is written) or decode."""


class UnsupportedOperationError(BridgeError):
    """The backend does not support this operation; see its ``capabilities``."""


class BackendError(BridgeError):
    """The backend failed to carry out a call; the driver's error is chained."""


class BackendUnavailableError(BackendError):
    """The backend's server could not be reached or the connection was lost."""
