"""`python -m print_scp`: run this service alone (what its container runs)."""

from imaging_common.runner import run_service

from print_scp.app import SERVICE, create_app
from print_scp.settings import Settings

if __name__ == "__main__":
    run_service(SERVICE, create_app, Settings())
