"""Print SCP: DICOM virtual film printer (WS/T 597-2018): film sessions, matching, cloud film."""
