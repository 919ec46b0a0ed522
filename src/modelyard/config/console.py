"""``console:``: the browser console served at ``/console`` (issue 18). It is open only where the admin API
is (``governance.admin_key_env``) and asks for the same admin key."""

from __future__ import annotations

from pydantic import Field

from modelyard.config.strict import Strict


class ConsoleConfig(Strict):
    #: The ``decision.json`` of the latest ``modelyard decide`` run whose triggers and recommendations the
    #: console shows; relative paths are from the gateway's working directory. The default is where
    #: ``modelyard decide`` writes it (``--out reports``) run from the same directory.
    decision_report: str = Field("reports/decision.json", min_length=1)
