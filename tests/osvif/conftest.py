"""pytest setup for the os-vif interop tests.

Silences the deprecation noise os-vif's dependencies print on import
(eventlet, oslo.service, oslo.utils): nothing the tests can act on.
"""

import warnings

_IGNORED = [
    r"ignore:\s*Eventlet is deprecated",
    r"ignore::DeprecationWarning:oslo_\w+",
]

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"oslo_\w+")


def pytest_configure(config):
    for line in _IGNORED:
        config.addinivalue_line("filterwarnings", line)
