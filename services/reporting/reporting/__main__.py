"""`python -m reporting`: run this service alone (what its container runs)."""

from imaging_common.runner import run_service

from reporting.app import SERVICE, create_app
from reporting.settings import Settings

if __name__ == "__main__":
    run_service(SERVICE, create_app, Settings())
