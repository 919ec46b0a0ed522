"""Outbound HTTP: the lean HTTP/1.1 client the gateway's provider calls and the endpoint benchmark share."""
