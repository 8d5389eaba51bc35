"""free_port never hands out one port twice in a process: two instances given the same port both
bind it (SO_REUSEPORT) and the kernel splits their connections."""

from __future__ import annotations

from chaos import platform


def test_a_port_is_not_handed_out_twice_even_when_it_is_picked_again(monkeypatch):
    first = platform.free_port()
    picks = iter([first, first, *platform.LISTEN_PORTS])  # the same port picked again, then any
    monkeypatch.setattr(platform.random, "choice", lambda ports: next(picks))
    second = platform.free_port()
    assert second != first and second in platform.LISTEN_PORTS
