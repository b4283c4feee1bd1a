"""Settings of the dashboard service (environment variables, see CommonSettings).

Each value: its default, the variable that sets it, an example.
"""

from __future__ import annotations

from imaging_common.config import CommonSettings


class Settings(CommonSettings):
    # IMAGING_DASHBOARD_TIMEZONE: the center's local time, for days, weeks, months, years and opening
    # hours, e.g. Asia/Shanghai.
    dashboard_timezone: str = "Asia/Shanghai"
    # IMAGING_DASHBOARD_CRITICAL_WINDOW_MINUTES: the completion window of critical values (8.7.1 (2)), e.g. 10.
    dashboard_critical_window_minutes: float = 10.0
    # IMAGING_DASHBOARD_ECHO_SECONDS: how often each registered device is sent a C-ECHO, e.g. 30.
    dashboard_echo_seconds: float = 30.0
    # IMAGING_DASHBOARD_ECHO_TIMEOUT: seconds to wait for the association and the echo's answer, e.g. 5.
    dashboard_echo_timeout: float = 5.0
    # IMAGING_DASHBOARD_ECHO_AE_TITLE: our calling AE title in the C-ECHO, e.g. IMAGING-DASH.
    dashboard_echo_ae_title: str = "IMAGING-DASH"
    # IMAGING_DASHBOARD_IDLE_MINUTES: a reachable device with no exam or film for this long is "idle", e.g. 30.
    dashboard_idle_minutes: float = 30.0
    # IMAGING_DASHBOARD_SCREEN_SECONDS: how often the wall screen's WebSocket is sent the current figures, e.g. 5.
    dashboard_screen_seconds: float = 5.0
