"""Settings of the queue calling service (environment variables, see CommonSettings).

Each value: its default, the variable that sets it, an example.
"""

from __future__ import annotations

from imaging_common.config import CommonSettings


class Settings(CommonSettings):
    # IMAGING_QUEUE_TIMEZONE: the center's local time, for days in statistics, screen on/off times.
    queue_timezone: str = "Asia/Shanghai"
    # IMAGING_QUEUE_EARLY_CHECKIN_MINUTES: check-in opens this long before the appointment, e.g. 30.
    queue_early_checkin_minutes: float = 60
    # IMAGING_QUEUE_LATE_CHECKIN_MINUTES: after the slot ends, check-in is still accepted this long.
    queue_late_checkin_minutes: float = 240
    # IMAGING_QUEUE_ON_TIME_GRACE_MINUTES: arriving this close to the slot counts as "on time".
    queue_on_time_grace_minutes: float = 15
    # IMAGING_QUEUE_ANNOUNCEMENT: what screens say for a call; {ticket} {name} (masked) {room}.
    queue_announcement: str = "请 {ticket} 号 {name} 到 {room} 检查"
    # IMAGING_QUEUE_WEBHOOK_URL: every patient notification is also POSTed here when set,
    # e.g. https://msg-gateway.hospital.local/queue (a hospital message gateway behind SMS/WeChat).
    queue_webhook_url: str | None = None
    # IMAGING_QUEUE_WEBHOOK_TIMEOUT: seconds per webhook delivery attempt.
    queue_webhook_timeout: float = 5.0
    # IMAGING_QUEUE_NOTIFY_MAX_ATTEMPTS: deliveries tried before a notification is marked failed.
    queue_notify_max_attempts: int = 5
    # IMAGING_QUEUE_SCREEN_PING_SECONDS: heartbeat to screens; a screen that hears nothing for
    # three beats reconnects and re-syncs.
    queue_screen_ping_seconds: float = 10.0
    # IMAGING_QUEUE_SCREEN_SEND_BUFFER: messages buffered per screen socket before a slow screen is
    # dropped (it reconnects and gets the full state).
    queue_screen_send_buffer: int = 64
