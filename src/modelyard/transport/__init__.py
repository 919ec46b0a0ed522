"""Lean HTTP/1.1 on httptools: the gateway's server (``server``) and the keep-alive client under provider
calls and the endpoint benchmark (``http1``, ``connection``)."""
