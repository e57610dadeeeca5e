"""``kioskctl``: the technician's and agent's command line, a thin client of the API on the unix socket.

It renders the station at a glance (French by default, ``--lang en``) or as JSON; it never talks to hardware.
``commands`` is the table of verbs, ``render`` the text for people, ``client`` the way to kioskd."""

from __future__ import annotations

from kioskd.cli.commands import main
from kioskd.cli.render import render_atlas, render_doctor, render_receipt, render_status

__all__ = ["main", "render_atlas", "render_doctor", "render_receipt", "render_status"]
