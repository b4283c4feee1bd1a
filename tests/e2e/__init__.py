"""One patient's journey through the platform: steps (`journey`) and the platform as processes (`cluster`)."""
