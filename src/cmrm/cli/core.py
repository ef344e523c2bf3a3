"""Core commands: inspect, calibrate, generate."""

from __future__ import annotations
