"""Settings of the print scp service (environment variables, see CommonSettings)."""

from imaging_common.config import CommonSettings


class Settings(CommonSettings):
    pass
