"""Core services: typed functions on explicit objects. They flush but never commit, raise DomainError
subclasses, and never touch request, session or flash."""


class DomainError(Exception):
    """A rule of the domain was broken; the message is fit to show to the user."""
