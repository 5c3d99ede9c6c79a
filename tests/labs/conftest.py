"""Labs fixtures on top of the core ones."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time
from typing import Any

import pytest

from labs.models import Room, Site
from lms.extensions import db


@pytest.fixture
def create_site(app, dummy_training_base) -> Callable[..., Site]:
    def create(**params: Any) -> Site:
        params.setdefault("code", "SPU-LAB")
        params.setdefault("name", "东南理工大学实训楼")
        params.setdefault("institution", dummy_training_base)
        site = Site(**params)
        db.session.add(site)
        db.session.flush()
        return site

    return create


@pytest.fixture
def create_room(app, create_site) -> Callable[..., Room]:
    sites: list[Site] = []

    def create(**params: Any) -> Room:
        if "site" not in params:
            if not sites:
                sites.append(create_site())
            params["site"] = sites[0]
        params.setdefault("code", "A301")
        params.setdefault("name", "人工智能实训室")
        params.setdefault("seats", 30)
        params.setdefault("workstations", 30)
        params.setdefault("open_from", time(8, 0))
        params.setdefault("open_until", time(21, 0))
        room = Room(**params)
        db.session.add(room)
        db.session.flush()
        return room

    return create
