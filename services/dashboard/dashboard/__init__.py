"""The department dashboard: statistics from every service's events, modality status, wall screen."""
