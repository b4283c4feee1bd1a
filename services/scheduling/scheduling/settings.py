"""Settings of the scheduling service (environment variables, see CommonSettings)."""

from zoneinfo import ZoneInfo

from imaging_common.config import CommonSettings


class Settings(CommonSettings):
    # IMAGING_SCHEDULING_TIMEZONE: working hours and "same day" are in this zone; e.g. Asia/Shanghai
    scheduling_timezone: str = "Asia/Shanghai"
    # IMAGING_SCHEDULING_HOLD_MINUTES: how long a hold keeps a slot before it expires; e.g. 15
    scheduling_hold_minutes: float = 15
    # IMAGING_SCHEDULING_HORIZON_DAYS: how many days ahead searches look; e.g. 60
    scheduling_horizon_days: int = 60
    # IMAGING_SCHEDULING_REMINDER_HOURS: appointment.reminder this long before the start; e.g. 24
    scheduling_reminder_hours: float = 24.0
    # IMAGING_SCHEDULING_NO_SHOW_AFTER_MINUTES: booked, not arrived, this long after the end -> no-show;
    # negative turns automatic no-shows off (the desk records them); e.g. 120
    scheduling_no_show_after_minutes: int = 120
    # IMAGING_SCHEDULING_HOUSEKEEPING_SECONDS: how often holds, reminders and no-shows are processed; e.g. 30
    scheduling_housekeeping_seconds: float = 30.0

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.scheduling_timezone)
