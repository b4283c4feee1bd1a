"""`python -m critical_values`: run this service alone (what its container runs)."""

from imaging_common.runner import run_service

from critical_values.app import SERVICE, create_app
from critical_values.settings import Settings

if __name__ == "__main__":
    run_service(SERVICE, create_app, Settings())
