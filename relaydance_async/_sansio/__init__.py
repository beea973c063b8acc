"""The sans-I/O core: everything decidable without a socket (no asyncio, aiohttp, os, time)."""
