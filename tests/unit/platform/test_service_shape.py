"""Every service has the same shape, is run the same way, and its modules import downward only."""

from __future__ import annotations

import ast
import importlib

import pytest
from nameko.cli.run import import_service

from services import SERVICES, nameko_target
from tests.support import ROOT

MODULES = ("service", "api", "handlers", "domain", "ports", "store", "settings", "metrics")
# What each module may import from its own service (api: the domain, not the store or the use cases;
# handlers: not the metrics, which the service counts with).
FORBIDDEN = {
    "api": {"store", "handlers", "service"},
    "handlers": {"metrics", "service", "api"},
    "domain": {"store", "handlers", "service", "api", "metrics", "settings", "ports"},
    # The unit of work's Protocol: what the use cases need, over the domain, without the store.
    "ports": {"store", "handlers", "service", "api", "metrics", "settings"},
}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_has_the_same_modules(service):
    for module in MODULES:
        assert (ROOT / "services" / service / f"{module}.py").is_file(), f"services/{service}/{module}.py"
    assert (ROOT / "services" / service / "migrations").is_dir()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_nameko_finds_the_one_service_class_by_its_module_alone(service):
    module, _, name = nameko_target(service).partition(":")
    found = import_service(module)
    assert [cls.__name__ for cls in found] == [name]
    assert getattr(importlib.import_module(module), name).name == service


def _own_imports(service: str, module: str) -> set[str]:
    tree = ast.parse((ROOT / "services" / service / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                names.add(node.module.split(".")[0])
            elif node.level == 1:
                names |= {alias.name for alias in node.names}
            elif (node.module or "").startswith(f"services.{service}."):
                names.add(node.module.split(".")[2])
    return names


@pytest.mark.parametrize("service", sorted(SERVICES))
@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_modules_import_downward_only(service, module):
    assert not _own_imports(service, module) & FORBIDDEN[module]
