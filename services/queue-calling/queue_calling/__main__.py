"""`python -m queue_calling`: run this service alone (what its container runs)."""

from imaging_common.runner import run_service

from queue_calling.app import SERVICE, create_app
from queue_calling.settings import Settings

if __name__ == "__main__":
    run_service(SERVICE, create_app, Settings())
