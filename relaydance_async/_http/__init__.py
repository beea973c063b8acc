"""The request layer: the request budget, streaming uploads and downloads."""
