"""Settings of the registration service (environment variables, see CommonSettings)."""

from imaging_common.config import CommonSettings


class Settings(CommonSettings):
    pass
