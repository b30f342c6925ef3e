"""Stub."""

from __future__ import annotations

from fastapi import APIRouter

from services.console.roles import Table
from services.console.web import GUARDS

router = APIRouter(dependencies=GUARDS)
ACCESS: Table = {}
