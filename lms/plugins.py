"""The plugin contract and the host that loads plugins from the ``lms.plugins`` entry points."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click
    from flask import Blueprint, Flask

    from lms.models import Role, User

ENTRY_POINT_GROUP = "lms.plugins"


class PluginError(RuntimeError):
    """A plugin named in the configuration is not installed or is not a Plugin."""


@dataclass(frozen=True)
class NavItem:
    """A link in the header for users holding one of ``roles``."""

    endpoint: str
    label: Any  # a lazy_gettext string
    roles: frozenset[Role]


@dataclass(frozen=True)
class DashboardPanel:
    """A block on a dashboard: a template rendered with ``context``."""

    template: str
    context: dict[str, Any] = field(default_factory=dict)
    order: int = 100


class Plugin:
    """Base class of a plugin. Subclasses override what they provide; importing one does nothing."""

    name: str = ""
    #: the name of the plugin's command group under ``lms`` (None: no commands)
    cli_name: str | None = None

    def blueprints(self) -> list[Blueprint]:
        """Blueprints to register; built on demand so that importing the plugin stays cheap."""
        return []

    def init_app(self, app: Flask) -> None:
        """Connect signal receivers, template filters and the like."""

    def cli(self) -> click.Group | None:
        """The plugin's command group, imported only when the command is used."""
        return None

    def nav_items(self) -> list[NavItem]:
        """Header links this plugin adds."""
        return []

    def dashboard_panels(self, user: User, role: Role) -> list[DashboardPanel]:
        """Panels this plugin shows on ``user``'s dashboard for ``role``."""
        return []

    def openapi_paths(self) -> dict[str, Any]:
        """OpenAPI path items for this plugin's API routes."""
        return {}


def installed_plugins() -> dict[str, Any]:
    """Entry points of every installed plugin, by name (not loaded)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def parse_plugin_names(value: str | Iterable[str] | None) -> list[str] | None:
    """``"a, b"`` or ``["a", "b"]`` as a list of names; None or "*" means every installed plugin."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip() in ("", "*", "all"):
            return None if value.strip() in ("*", "all") else []
        value = value.split(",")
    return [name.strip() for name in value if name.strip()]


def load_plugins(names: list[str] | None) -> list[Plugin]:
    """Load the named plugins (all installed ones when None); an unknown name raises PluginError."""
    available = installed_plugins()
    wanted = sorted(available) if names is None else names
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise PluginError(
            f"unknown plugin(s) {', '.join(unknown)} in LMS_PLUGINS; installed: "
            f"{', '.join(sorted(available)) or 'none'}"
        )
    plugins = []
    for name in wanted:
        plugin = available[name].load()
        if not isinstance(plugin, Plugin):
            raise PluginError(f"entry point {name!r} does not point at a Plugin instance")
        plugins.append(plugin)
    return plugins
