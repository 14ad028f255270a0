"""Loopback HTTP servers that speak each platform's API (tests only)."""
