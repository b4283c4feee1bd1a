# Helm for chart tests: placeholder, being written (issue 10).
