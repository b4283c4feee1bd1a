"""`python -m patient_portal`: run this service alone (what its container runs)."""

from imaging_common.runner import run_service

from patient_portal.app import SERVICE, create_app
from patient_portal.settings import Settings

if __name__ == "__main__":
    run_service(SERVICE, create_app, Settings())
