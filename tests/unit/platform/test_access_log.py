"""The web server's access line is made only when its logger writes INFO (KOKEILU_ACCESS_LOG_LEVEL)."""

from __future__ import annotations

import logging
import socket

import pytest

from kokeilu.http.server import ACCESS_LOG, HardenedWebServer


@pytest.mark.parametrize(("level", "made"), [(logging.NOTSET, True), (logging.INFO, True), (logging.WARNING, False)])
def test_access_lines_follow_the_access_loggers_level(level, made):
    logger = logging.getLogger(ACCESS_LOG)
    before, root = logger.level, logging.getLogger().level
    sock = socket.socket()
    try:
        logging.getLogger().setLevel(logging.INFO)  # LOG_LEVEL's default
        logger.setLevel(level)
        server = HardenedWebServer().get_wsgi_server(sock, lambda environ, start_response: [])
        assert server.log_output is made
        assert server.log is logger  # its errors are still logged there
    finally:
        logger.setLevel(before)
        logging.getLogger().setLevel(root)
        sock.close()
