"""`python -m dashboard`: run this service alone (what its container runs)."""

from imaging_common.runner import run_service

from dashboard.app import SERVICE, create_app
from dashboard.settings import Settings

if __name__ == "__main__":
    run_service(SERVICE, create_app, Settings())
